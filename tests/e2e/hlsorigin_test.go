package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/tests/peers"
)

// hlsOriginProc is a `portier hls-origin` process.
type hlsOriginProc struct {
	relayProc
}

// startHLSOrigin starts `portier hls-origin` on a free port with storage
// (a directory or s3://…) and waits for /healthz unless wait is false.
func startHLSOrigin(t *testing.T, name, control, storage string, env []string, wait bool, extra ...string) *hlsOriginProc {
	t.Helper()
	bin := peers.PortierBinary(t)
	hp := &hlsOriginProc{relayProc{name: name, httpAddr: peers.FreeAddr(t), done: make(chan struct{})}}
	args := append([]string{"hls-origin", "--name", name, "--control", control, "--cluster-token", relayClusterToken,
		"--http-addr", hp.httpAddr, "--storage", storage, "--log-level", "debug"}, extra...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	hp.log = logf
	hp.cmd = exec.Command(bin, args...)
	hp.cmd.Env = append(clusterEnv(), env...)
	hp.cmd.Stdout, hp.cmd.Stderr = logf, logf
	if err := hp.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = hp.cmd.Wait(); close(hp.done) }()
	t.Cleanup(func() {
		hp.kill(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(string(b), 6000))
		}
		logf.Close()
	})
	if wait {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := waitHTTP(ctx, "http://"+hp.httpAddr+"/healthz"); err != nil {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s did not come up: %v\n%s", name, err, b)
		}
	}
	return hp
}

// ffmpegHLSIntoOrigin makes real ffmpeg write a live two-rendition HLS
// ladder by PUT (persistent connections, chunked bodies) into the origin
// at addr for stream 1, then checks with real ffprobe, reading through
// the origin with the cluster token, that the playlists play as H.264.
func ffmpegHLSIntoOrigin(t *testing.T, addr string) {
	t.Helper()
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	cred := hlscred.Sign(relayClusterToken, hlscred.Cred{StreamID: 1, TaskID: 1, Epoch: 1})
	base := "http://" + addr + "/hls/s/1/"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var procs []*exec.Cmd
	for _, r := range []struct{ name, size string }{{"v0", "320x180"}, {"v1", "160x90"}} {
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
			"-re", "-f", "lavfi", "-i", "testsrc2=size="+r.size+":rate=25", "-t", "7",
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
			"-f", "hls", "-hls_time", "1", "-hls_list_size", "4", "-hls_flags", "program_date_time",
			"-hls_start_number_source", "epoch", "-method", "PUT", "-http_persistent", "1",
			"-headers", "Authorization: Bearer "+cred+"\r\n",
			"-hls_segment_filename", base+r.name+"/seg_%d.ts", base+r.name+"/index.m3u8")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start ffmpeg: %v", err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("ffmpeg %s stderr:\n%s", r.name, tail(stderr.String(), 3000))
			}
		})
		procs = append(procs, cmd)
	}
	master := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=320x180\nv0/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x90\nv1/index.m3u8\n"
	req, _ := http.NewRequest(http.MethodPut, base+"master.m3u8", strings.NewReader(master))
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT master: %v %v", err, resp)
	}
	resp.Body.Close()

	// While ffmpeg writes, the media playlist becomes readable and plays.
	deadline := time.Now().Add(20 * time.Second)
	var probe struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
		} `json:"streams"`
	}
	for {
		out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-headers", "Authorization: Bearer "+relayClusterToken+"\r\n",
			"-show_streams", "-of", "json", base+"master.m3u8").Output()
		if err == nil && json.Unmarshal(out, &probe) == nil && len(probe.Streams) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ffprobe never read the ladder from the origin: %v %s", err, out)
		}
		time.Sleep(200 * time.Millisecond) // poll interval, bounded by the deadline above
	}
	found := false
	for _, s := range probe.Streams {
		found = found || (s.CodecName == "h264" && s.Width > 0)
	}
	if !found {
		t.Fatalf("ffprobe found no h264 stream through the origin: %+v", probe.Streams)
	}
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			t.Errorf("ffmpeg: %v", err)
		}
	}
	// Every upload was accepted: no segment was missing under a playlist,
	// nothing was refused.
	m := metricsText(t, addr)
	for _, bad := range []string{`result="missing_segment"`, `result="fenced"`, `result="storage_error"`, `result="bad_request"`} {
		if strings.Contains(m, bad) {
			t.Errorf("origin refused uploads (%s):\n%s", bad, grepLines(m, "uploads_total"))
		}
	}
	if !strings.Contains(m, `portier_hls_origin_uploads_total{kind="segment",result="ok"}`) {
		t.Errorf("no segment upload counted:\n%s", grepLines(m, "uploads_total"))
	}
	t.Logf("origin upload metrics:\n%s", grepLines(m, "upload_seconds_sum")+"\n"+grepLines(m, "upload_seconds_count")+"\n"+grepLines(m, "bytes_in_total"))
	// The media playlist has the cache headers of the contract.
	req, _ = http.NewRequest(http.MethodGet, base+"v0/index.m3u8", nil)
	req.Header.Set("Authorization", "Bearer "+relayClusterToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "max-age=1" || !strings.Contains(string(body), "seg_") {
		t.Errorf("GET media playlist = %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A real ffmpeg writes a live ladder into a real `portier hls-origin`
// (filesystem storage) that registered with a real control plane; a
// second origin under the same name exits non-zero.
func TestHLSOriginFFmpeg(t *testing.T) {
	cp := startControlPlane(t)
	dir := t.TempDir()
	hp := startHLSOrigin(t, "hls-1", cp.URL, dir, nil, true)

	cl, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the origin registers as hls-origin", func() bool {
		nodes, err := cl.Nodes(context.Background(), "hls-origin")
		return err == nil && len(nodes) == 1 && nodes[0].Name == "hls-1" && nodes[0].HTTPAddress == hp.httpAddr
	})

	ffmpegHLSIntoOrigin(t, hp.httpAddr)
	if ents, _ := filepath.Glob(filepath.Join(dir, "s", "1", "v0", "seg_*.ts")); len(ents) < 3 {
		t.Errorf("segments on disk: %v", ents)
	}
	if b, _ := os.ReadFile(hp.log.Name()); strings.Contains(string(b), "slow segment upload") {
		t.Errorf("slow-upload warnings for a ladder that keeps up:\n%s", grepLines(string(b), "slow segment"))
	}

	clash := startHLSOrigin(t, "hls-1", cp.URL, t.TempDir(), nil, false)
	select {
	case <-clash.done:
		if clash.cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("a second hls-origin named hls-1 exited 0")
		}
		if b, _ := os.ReadFile(clash.log.Name()); !strings.Contains(string(b), "hls-1") {
			t.Errorf("the clash's error does not name the node:\n%s", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a second hls-origin named hls-1 kept running")
	}
}

// `portier run` serves the HLS origin on its HTTP address under /hls/s/,
// stores in DATA/hls and registers it as NAME-hls-origin.
func TestRunEmbedsHLSOrigin(t *testing.T) {
	a := startAllInOne(t, "--cluster-token", relayClusterToken, "--no-concierge")
	cred := hlscred.Sign(relayClusterToken, hlscred.Cred{StreamID: 7, TaskID: 1, Epoch: 1})
	do := func(method, path, auth, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+a.http+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := do(http.MethodPut, "/hls/s/7/v0/seg_1.ts", cred, "segment"); st != http.StatusCreated {
		t.Fatalf("PUT segment = %d %s", st, b)
	}
	if st, b := do(http.MethodPut, "/hls/s/7/v0/index.m3u8", cred, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg_1.ts\n"); st != http.StatusCreated {
		t.Fatalf("PUT playlist = %d %s", st, b)
	}
	if st, b := do(http.MethodGet, "/hls/s/7/v0/seg_1.ts", relayClusterToken, ""); st != 200 || b != "segment" {
		t.Errorf("GET with the cluster token = %d %q", st, b)
	}
	// Without Authorization a GET is a viewer's: the embedded CDN edge
	// answers it, and wants a signed URL.
	if st, b := do(http.MethodGet, "/hls/s/7/v0/seg_1.ts", "", ""); st != http.StatusForbidden || !strings.Contains(b, "not signed") {
		t.Errorf("GET without a token or signature = %d %s, want 403", st, b)
	}
	signed := "/hls/s/7/v0/seg_1.ts?" + hlssign.Sign(hlssign.Secret(relayClusterToken), "/hls/s/7/", time.Now().Add(time.Hour)).Encode()
	if st, b := do(http.MethodGet, signed, "", ""); st != 200 || b != "segment" {
		t.Errorf("signed GET through the embedded edge = %d %q", st, b)
	}
	if st, b := do(http.MethodGet, "/metrics", "", ""); st != 200 || !strings.Contains(b, `portier_hls_origin_uploads_total{kind="segment",result="ok"} 1`) {
		t.Errorf("run's /metrics = %d without the origin's upload count:\n%s", st, grepLines(b, "hls_origin"))
	}
	if _, err := os.Stat(filepath.Join(a.dir, "hls", "s", "7", "v0", "seg_1.ts")); err != nil {
		t.Errorf("segment not under DATA/hls: %v", err)
	}
	cl, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: "http://" + a.http, Token: relayClusterToken})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "e2e-hls-origin registered", func() bool {
		nodes, err := cl.Nodes(context.Background(), "hls-origin")
		return err == nil && len(nodes) == 1 && nodes[0].Name == "e2e-hls-origin"
	})
	testutil.Eventually(t, 10*time.Second, "e2e-cdn-edge registered", func() bool {
		nodes, err := cl.Nodes(context.Background(), "cdn-edge")
		return err == nil && len(nodes) == 1 && nodes[0].Name == "e2e-cdn-edge" && nodes[0].HTTPAddress == a.http
	})
	if _, b := do(http.MethodGet, "/metrics", "", ""); !strings.Contains(b, `portier_cdn_edge_requests_total{result="miss"} 1`) {
		t.Errorf("run's /metrics lacks the edge's miss:\n%s", grepLines(b, "cdn_edge_requests"))
	}
}

// The same ffmpeg ladder into `portier hls-origin --storage s3://…` on a
// real S3 server (versitygw, posix backend); a restart of the origin keeps
// the fence, read back from the bucket.
func TestHLSOriginFFmpegS3(t *testing.T) {
	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	cp := startControlPlane(t)
	env := []string{"AWS_ACCESS_KEY_ID=" + g.AccessKey, "AWS_SECRET_ACCESS_KEY=" + g.SecretKey}
	s3 := []string{"--s3-endpoint", g.Endpoint(), "--s3-insecure", "--s3-region", "us-east-1"}
	hp := startHLSOrigin(t, "hls-s3", cp.URL, "s3://media/portier/hls", env, true, s3...)
	ffmpegHLSIntoOrigin(t, hp.httpAddr)
	if ents, _ := filepath.Glob(filepath.Join(g.Dir, "media", "portier", "hls", "s", "1", "v0", "seg_*.ts")); len(ents) < 3 {
		t.Errorf("segments in the bucket: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(g.Dir, "media", "portier", "hls", "fence", "1.json")); err != nil {
		t.Errorf("fence object: %v", err)
	}
	// Restart: the fence is read back from the bucket.
	hp.kill(syscall.SIGTERM)
	hp2 := startHLSOrigin(t, "hls-s3", cp.URL, "s3://media/portier/hls", env, true, s3...)
	put := func(addr string, c hlscred.Cred) int {
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/hls/s/1/v0/late.ts", strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+hlscred.Sign(relayClusterToken, c))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := put(hp2.httpAddr, hlscred.Cred{StreamID: 1, TaskID: 2, Epoch: 1}); st != http.StatusCreated {
		t.Fatalf("newer task after restart = %d", st)
	}
	hp2.kill(syscall.SIGTERM)
	hp3 := startHLSOrigin(t, "hls-s3", cp.URL, "s3://media/portier/hls", env, true, s3...)
	if st := put(hp3.httpAddr, hlscred.Cred{StreamID: 1, TaskID: 1, Epoch: 1}); st != http.StatusConflict {
		t.Errorf("older task after a restart = %d, want 409", st)
	}
}
