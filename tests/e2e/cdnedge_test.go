package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/tests/peers"
)

// startCDNEdge starts `portier cdn-edge` on a free port in front of
// origins and waits for /healthz.
func startCDNEdge(t *testing.T, name, control string, origins []string, extra ...string) *relayProc {
	t.Helper()
	return startCDNEdgeToken(t, name, control, relayClusterToken, origins, extra...)
}

// startCDNEdgeToken is startCDNEdge with the cluster token token.
func startCDNEdgeToken(t *testing.T, name, control, token string, origins []string, extra ...string) *relayProc {
	t.Helper()
	bin := peers.PortierBinary(t)
	ep := &relayProc{name: name, httpAddr: peers.FreeAddr(t), done: make(chan struct{})}
	args := append([]string{"cdn-edge", "--name", name, "--control", control, "--cluster-token", token,
		"--http-addr", ep.httpAddr, "--origin", strings.Join(origins, ","), "--log-level", "debug"}, extra...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	ep.log = logf
	ep.cmd = exec.Command(bin, args...)
	ep.cmd.Env = clusterEnv()
	ep.cmd.Stdout, ep.cmd.Stderr = logf, logf
	if err := ep.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = ep.cmd.Wait(); close(ep.done) }()
	t.Cleanup(func() {
		ep.kill(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(string(b), 6000))
		}
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, "http://"+ep.httpAddr+"/healthz"); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s did not come up: %v\n%s", name, err, b)
	}
	return ep
}

// signedURL is a viewer URL of path on addr, signed for stream 1's prefix.
func signedURL(addr, path string, exp time.Time) string {
	prefix, _ := hlssign.PrefixOf(path)
	return "http://" + addr + path + "?" + hlssign.Sign(hlssign.Secret(relayClusterToken), prefix, exp).Encode()
}

// fetch GETs url with optional header pairs and returns status, headers and body.
func fetch(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// A real `portier cdn-edge` in front of a real `portier hls-origin` that
// real ffmpeg filled: signed playlists and segments come through the edge
// byte for byte, ffprobe plays a segment through it, 40 viewers asking at
// once for an uncached segment cost the origin one read of it, Range works,
// bad signatures never reach the origin, and the edge registers as
// cdn-edge with its load.
func TestCDNEdgeInFrontOfHLSOrigin(t *testing.T) {
	cp := startControlPlane(t)
	hp := startHLSOrigin(t, "hls-1", cp.URL, t.TempDir(), nil, true)
	ffmpegHLSIntoOrigin(t, hp.httpAddr)
	ep := startCDNEdge(t, "edge-1", cp.URL, []string{"http://" + hp.httpAddr})
	exp := time.Now().Add(time.Hour)

	if code, _, b := fetch(t, "http://"+ep.httpAddr+"/readyz"); code != 200 {
		t.Fatalf("readyz with a live origin: %d %s", code, b)
	}
	origin := func(path string) []byte {
		code, _, b := fetch(t, "http://"+hp.httpAddr+path, "Authorization", "Bearer "+relayClusterToken)
		if code != 200 {
			t.Fatalf("origin %s: %d", path, code)
		}
		return b
	}
	code, h, master := fetch(t, signedURL(ep.httpAddr, "/hls/s/1/master.m3u8", exp)+"&CMCD=sid%3D%22v1%22")
	if code != 200 || !bytes.Equal(master, origin("/hls/s/1/master.m3u8")) || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("master through the edge: %d %v\n%s", code, h, master)
	}
	code, _, media := fetch(t, signedURL(ep.httpAddr, "/hls/s/1/v0/index.m3u8", exp))
	segs := regexp.MustCompile(`(?m)^seg_\d+\.ts$`).FindAllString(string(media), -1)
	if code != 200 || len(segs) < 3 {
		t.Fatalf("media playlist through the edge: %d\n%s", code, media)
	}
	for _, s := range segs[:len(segs)-1] {
		p := "/hls/s/1/v0/" + s
		code, h, b := fetch(t, signedURL(ep.httpAddr, p, exp))
		if code != 200 || !bytes.Equal(b, origin(p)) || h.Get("X-Cache") != "miss" {
			t.Fatalf("%s through the edge: %d X-Cache %q, %d bytes", p, code, h.Get("X-Cache"), len(b))
		}
		if code, h, _ = fetch(t, signedURL(ep.httpAddr, p, exp)); code != 200 || h.Get("X-Cache") != "hit" {
			t.Fatalf("%s again: %d X-Cache %q, want a hit", p, code, h.Get("X-Cache"))
		}
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-of", "json", signedURL(ep.httpAddr, "/hls/s/1/v0/"+segs[0], exp)).Output()
	var probe struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err != nil || json.Unmarshal(out, &probe) != nil || len(probe.Streams) == 0 || probe.Streams[0].CodecName != "h264" {
		t.Fatalf("ffprobe of a segment through the edge: %v %s", err, out)
	}

	// N viewers at once for a segment the edge has not cached: one origin read.
	last := "/hls/s/1/v1/" + regexp.MustCompile(`(?m)^seg_\d+\.ts$`).FindAllString(string(origin("/hls/s/1/v1/index.m3u8")), -1)[0]
	want := origin(last)
	before, _ := metricValue(t, hp.httpAddr, "portier_hls_origin_bytes_out_total")
	const viewers = 40
	concurrentViewers(t, viewers, func(i int) string { return signedURL(ep.httpAddr, last, exp) + fmt.Sprintf("&token=viewer%d", i) }, want)
	after, _ := metricValue(t, hp.httpAddr, "portier_hls_origin_bytes_out_total")
	if got := after - before; got != float64(len(want)) {
		t.Fatalf("the origin served %v bytes for %d concurrent viewers of one %d-byte segment, want one copy", got, viewers, len(want))
	}
	em := metricsText(t, ep.httpAddr)
	t.Logf("edge requests:\n%s", grepLines(em, "requests_total"))

	// Range.
	code, h, part := fetch(t, signedURL(ep.httpAddr, last, exp), "Range", "bytes=188-375")
	if code != http.StatusPartialContent || !bytes.Equal(part, want[188:376]) || h.Get("Content-Range") != fmt.Sprintf("bytes 188-375/%d", len(want)) {
		t.Fatalf("Range: %d %v, %d bytes", code, h.Get("Content-Range"), len(part))
	}

	// Refused signatures, before any origin request.
	for _, c := range []struct{ name, url, want string }{
		{"unsigned", "http://" + ep.httpAddr + last, "not signed"},
		{"expired", signedURL(ep.httpAddr, last, time.Now().Add(-time.Minute)), "expired"},
		{"other stream", "http://" + ep.httpAddr + last + "?" + hlssign.Sign(hlssign.Secret(relayClusterToken), "/hls/s/2/", exp).Encode(), "does not match"},
	} {
		if code, _, b := fetch(t, c.url); code != http.StatusForbidden || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s", c.name, code, b)
		}
	}

	cl, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the edge registers as cdn-edge and reports its cache", func() bool {
		nodes, err := cl.Nodes(context.Background(), "cdn-edge")
		if err != nil || len(nodes) != 1 || nodes[0].Name != "edge-1" || nodes[0].HTTPAddress != ep.httpAddr {
			return false
		}
		ns, err := cp.Store.ListNodes(context.Background(), "cdn-edge")
		return err == nil && len(ns) == 1 && ns[0].Capacity == 1000 && ns[0].Load.CacheCapacityBytes > 0 && ns[0].Load.CacheBytes > 0
	})
}

// concurrentViewers GETs url(i) for viewers 0..n-1 at once and fails t
// unless every one answers 200 with exactly want.
func concurrentViewers(t *testing.T, n int, url func(i int) string, want []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url(i))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != 200 || !bytes.Equal(b, want)) {
				err = fmt.Errorf("viewer %d: %s, %d bytes", i, resp.Status, len(b))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
