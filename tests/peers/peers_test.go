package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkAV asserts that r holds the H.264 640x360 + AAC test stream.
func checkAV(t *testing.T, r ProbeResult) {
	t.Helper()
	v, ok := r.Video()
	if !ok || v.CodecName != "h264" || v.Width != 640 || v.Height != 360 {
		t.Errorf("video = %+v (found %v), want h264 640x360", v, ok)
	}
	if !r.HasCodec("aac") {
		t.Errorf("codecs = %v, want aac among them", r.Codecs())
	}
}

// publishAndProbe publishes to pubURL, waits for a second of frames, probes
// playURL and plays it for 2 s.
func publishAndProbe(t *testing.T, pubURL, playURL string, o PublishOpts) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := Publish(t, ctx, pubURL, o)
	if err := pub.WaitFrames(ctx, 25); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	r, err := ProbeUntil(t, ctx, playURL)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	checkAV(t, r)
	frames, err := PlayFrames(ctx, playURL, 2*time.Second)
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	if frames < 25 {
		t.Errorf("played %d frames in 2 s, want at least 25", frames)
	}
	if pub.Exited() {
		t.Errorf("publisher exited early (code %d)", pub.ExitCode())
	}
	pub.Stop()
	if !pub.Exited() {
		t.Error("publisher still running after Stop")
	}
}

func TestFreePorts(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		p := FreePort(t)
		if p <= 0 || p > 65535 {
			t.Fatalf("port %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("FreePort returned the same port 5 times: %v", seen)
	}
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("FreeAddr = %q", a)
	}
	if p := FreeUDPPortPair(t); p%2 != 0 {
		t.Errorf("RTP port %d is odd", p)
	}
}

func TestNginxRTMPPublishProbe(t *testing.T) {
	t.Parallel()
	n := NginxRTMP(t, NginxOpts{HTTPStat: true, Apps: []string{"live", "other"}})
	url := n.RTMPURL("live", "peers")
	publishAndProbe(t, url, url, PublishOpts{})
	resp, err := http.Get(n.StatURL())
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stat: %d %v", resp.StatusCode, err)
	}
	for _, want := range []string{"<rtmp>", "<name>live</name>", "<name>other</name>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("stat page lacks %q:\n%s", want, body)
		}
	}
}

func TestNginxRTMPMasterMode(t *testing.T) {
	t.Parallel()
	n := NginxRTMP(t, NginxOpts{MasterProcess: true})
	url := n.RTMPURL("live", "master")
	publishAndProbe(t, url, url, PublishOpts{VideoBitrate: 1_000_000})
}

func mediamtxPublishProbe(t *testing.T, v MediaMTXVersion) {
	m := StartMediaMTX(t, MediaMTXOpts{Version: v})
	t.Run("rtmp", func(t *testing.T) {
		publishAndProbe(t, m.RTMPURL("live/a"), m.RTMPURL("live/a"), PublishOpts{})
	})
	t.Run("rtsp-tcp-read-rtmp", func(t *testing.T) {
		publishAndProbe(t, m.RTSPURL("live/b"), m.RTMPURL("live/b"), PublishOpts{})
	})
	t.Run("rtsp-udp-read-rtsp", func(t *testing.T) {
		publishAndProbe(t, m.RTSPURL("live/c"), m.RTSPURL("live/c"), PublishOpts{RTSPTransport: "udp"})
	})
}

func TestMediaMTX1153PublishProbe(t *testing.T) { mediamtxPublishProbe(t, MediaMTX1153) }

func TestMediaMTX1140PublishProbe(t *testing.T) { mediamtxPublishProbe(t, MediaMTX1140) }

func TestPublishToClosedPortFails(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("rtmp://127.0.0.1:%d/live/nobody", FreePort(t))
	pub := Publish(t, ctx, url, PublishOpts{})
	err, ok := pub.WaitTimeout(20 * time.Second)
	if !ok {
		t.Fatal("ffmpeg still running 20 s after publishing to a closed port")
	}
	if err == nil || pub.ExitCode() == 0 {
		t.Fatalf("ffmpeg exited with %v (code %d), want a failure", err, pub.ExitCode())
	}
	if !strings.Contains(pub.Stderr(), "Connection refused") {
		t.Errorf("stderr does not say the connection was refused:\n%s", pub.Stderr())
	}
	if _, err := Probe(t, ctx, url); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}

// hookRecorder is the test's own authorisation endpoint: it refuses
// publishes of any stream or path containing "bad" and records each call.
type hookRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (h *hookRecorder) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *hookRecorder) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// waitRefused waits for a publisher that the server should refuse to exit.
func waitRefused(t *testing.T, pub *Proc) {
	t.Helper()
	if _, ok := pub.WaitTimeout(20 * time.Second); !ok {
		t.Fatal("refused publisher still running after 20 s")
	}
	if pub.ExitCode() == 0 {
		t.Errorf("refused publisher exited with 0")
	}
}

func TestNginxRTMPHooks(t *testing.T) {
	t.Parallel()
	h := &hookRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.record(r.PostForm.Get("call") + " " + r.PostForm.Get("name"))
		if strings.Contains(r.PostForm.Get("name"), "bad") {
			http.Error(w, "refused", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	n := NginxRTMP(t, NginxOpts{OnPublish: srv.URL + "/pub", OnPublishDone: srv.URL + "/done"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitRefused(t, Publish(t, ctx, n.RTMPURL("live", "bad"), PublishOpts{}))
	publishAndProbe(t, n.RTMPURL("live", "good"), n.RTMPURL("live", "good"), PublishOpts{})
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(h.seen(), "publish_done good") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"publish bad", "publish good", "publish_done good"} {
		if !slices.Contains(h.seen(), want) {
			t.Errorf("hook calls %v lack %q", h.seen(), want)
		}
	}
}

func TestMediaMTXAuthHTTP(t *testing.T) {
	h := &hookRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Action, Path, Protocol, Query string
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.record(req.Action + " " + req.Protocol + " " + req.Path)
		if strings.Contains(req.Path, "bad") {
			http.Error(w, "refused", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	m := StartMediaMTX(t, MediaMTXOpts{AuthHTTPAddress: srv.URL + "/hooks/mediamtx"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitRefused(t, Publish(t, ctx, m.RTMPURL("live/bad"), PublishOpts{}))
	waitRefused(t, Publish(t, ctx, m.RTSPURL("live/bad2"), PublishOpts{}))
	publishAndProbe(t, m.RTMPURL("live/good"), m.RTMPURL("live/good"), PublishOpts{})
	publishAndProbe(t, m.RTSPURL("live/good2"), m.RTSPURL("live/good2"), PublishOpts{})
	for _, want := range []string{"publish rtmp live/bad", "publish rtsp live/bad2", "publish rtmp live/good",
		"read rtmp live/good", "publish rtsp live/good2", "read rtsp live/good2"} {
		if !slices.Contains(h.seen(), want) {
			t.Errorf("auth calls %v lack %q", h.seen(), want)
		}
	}
}

// TestSRSPublishProbe needs PORTIER_BENCH_SRS (it is skipped otherwise).
func TestSRSPublishProbe(t *testing.T) {
	for _, low := range []bool{false, true} {
		t.Run(fmt.Sprintf("lowlatency=%v", low), func(t *testing.T) {
			s := StartSRS(t, SRSOpts{LowLatency: low})
			if !strings.HasPrefix(s.Version, "7.") && !strings.HasPrefix(s.Version, "6.") {
				t.Logf("SRS version %q: the benchmark was written against 7.0", s.Version)
			}
			url := s.RTMPURL("live", "peers")
			t.Run("rtmp", func(t *testing.T) { publishAndProbe(t, url, url, PublishOpts{}) })
			t.Run("http-flv", func(t *testing.T) { publishAndProbe(t, url, s.HTTPFLVURL("live", "peers"), PublishOpts{}) })
		})
	}
}
