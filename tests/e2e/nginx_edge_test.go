package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/tests/peers"
)

// Real nginx with deploy/nginx/cdn-edge.conf in front of a real `portier
// hls-origin` that real ffmpeg filled: md5-signed playlists and segments
// come through byte for byte and are cached, 20 viewers at once cost the
// origin one read of a segment, Range works, and bad or expired
// signatures are refused.
func TestNginxEdgeConfig(t *testing.T) {
	cp := startControlPlane(t)
	hp := startHLSOrigin(t, "hls-1", cp.URL, t.TempDir(), nil, true)
	ffmpegHLSIntoOrigin(t, hp.httpAddr)
	secret := hlssign.Secret(relayClusterToken)
	// The command deploy/nginx/cdn-edge.conf gives operators for the secret.
	if _, err := exec.LookPath("openssl"); err == nil {
		cmd := exec.Command("sh", "-c", `printf %s portier-hls-play-secret | openssl dgst -sha256 -hmac "$T" -r | cut -c1-32`)
		cmd.Env = []string{"T=" + relayClusterToken, "PATH=/usr/bin:/bin"}
		if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != secret {
			t.Errorf("the documented openssl command gives %q (%v), want %q", out, err, secret)
		}
	}
	ng := peers.NginxCDNEdge(t, peers.NginxEdgeOpts{Origin: hp.httpAddr, ClusterToken: relayClusterToken, PlaySecret: secret})
	exp := time.Now().Add(time.Hour)
	url := func(path string, exp time.Time) string { return signedURL(ng.HTTPAddr, path, exp) }
	origin := func(path string) []byte {
		code, _, b := fetch(t, "http://"+hp.httpAddr+path, "Authorization", "Bearer "+relayClusterToken)
		if code != 200 {
			t.Fatalf("origin %s: %d", path, code)
		}
		return b
	}
	code, _, media := fetch(t, url("/hls/s/1/v0/index.m3u8", exp)+"&CMCD=sid%3D%22v%22")
	segs := regexp.MustCompile(`(?m)^seg_\d+\.ts$`).FindAllString(string(media), -1)
	if code != 200 || len(segs) < 2 {
		t.Fatalf("media playlist through nginx: %d\n%s", code, media)
	}
	p := "/hls/s/1/v0/" + segs[0]
	want := origin(p)
	code, h, b := fetch(t, url(p, exp)+"&token=a")
	if code != 200 || !bytes.Equal(b, want) || h.Get("X-Cache") != "MISS" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("segment through nginx: %d %v, %d bytes", code, h, len(b))
	}
	if code, h, _ = fetch(t, url(p, exp)+"&token=b"); code != 200 || h.Get("X-Cache") != "HIT" {
		t.Fatalf("segment again (other viewer token): %d X-Cache %q, want HIT", code, h.Get("X-Cache"))
	}
	code, _, part := fetch(t, url(p, exp), "Range", "bytes=188-375")
	if code != http.StatusPartialContent || !bytes.Equal(part, want[188:376]) {
		t.Fatalf("Range through nginx: %d, %d bytes", code, len(part))
	}

	// 20 viewers at once for an uncached segment: one origin read.
	p2 := "/hls/s/1/v1/" + regexp.MustCompile(`(?m)^seg_\d+\.ts$`).FindAllString(string(origin("/hls/s/1/v1/index.m3u8")), -1)[0]
	want2 := origin(p2)
	before, _ := metricValue(t, hp.httpAddr, "portier_hls_origin_bytes_out_total")
	concurrentViewers(t, 20, func(i int) string { return url(p2, exp) + fmt.Sprintf("&token=%d", i) }, want2)
	after, _ := metricValue(t, hp.httpAddr, "portier_hls_origin_bytes_out_total")
	if after-before != float64(len(want2)) {
		t.Fatalf("origin served %v bytes for 20 viewers of a %d-byte segment through nginx, want one copy", after-before, len(want2))
	}

	other := hlssign.Sign(secret, "/hls/s/2/", exp)
	for _, c := range []struct{ name, url, want string }{
		{"unsigned", "http://" + ng.HTTPAddr + p, "does not match"},
		{"expired", url(p, time.Now().Add(-time.Minute)), "expired"},
		{"other stream", "http://" + ng.HTTPAddr + p + "?" + other.Encode(), "does not match"},
	} {
		if code, _, b := fetch(t, c.url); code != http.StatusForbidden || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s", c.name, code, b)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, "http://"+ng.HTTPAddr+p, nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("preflight through nginx: %s %v", resp.Status, resp.Header)
	}
}
