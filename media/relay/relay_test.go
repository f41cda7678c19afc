package relay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/media/rtmp"
)

// allowAll is a stand-in for the control plane's node API that allows
// every publish with key=good and records heartbeats (the end-to-end tests
// in tests/e2e use the real control plane).
type allowAll struct {
	mu         sync.Mutex
	heartbeats []map[string]any
}

func (a *allowAll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/internal/v1/nodes/register":
		io.WriteString(w, `{"heartbeat_interval_ms":50,"lease_ms":500}`)
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		var hb map[string]any
		json.NewDecoder(r.Body).Decode(&hb)
		a.mu.Lock()
		a.heartbeats = append(a.heartbeats, hb)
		a.mu.Unlock()
		io.WriteString(w, `{"heartbeat_interval_ms":50}`)
	case r.URL.Path == "/internal/v1/publish/authorize":
		var req map[string]string
		json.NewDecoder(r.Body).Decode(&req)
		if !strings.Contains(req["query"], "key=good") {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"allow":false,"reason":"wrong key"}`)
			return
		}
		io.WriteString(w, `{"allow":true,"app":"live","name":"`+req["name"]+`","stream_id":1}`)
	case r.URL.Path == "/internal/v1/play/authorize":
		io.WriteString(w, `{"allow":true}`)
	case r.URL.Path == "/internal/v1/publish/done":
		io.WriteString(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not_found"}}`)
	}
}

func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func start(t *testing.T, p Params) *Relay {
	t.Helper()
	p.RTMPAddr, p.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func publishSynthetic(t *testing.T, ctx context.Context, url, name string) (*rtmp.ClientConn, error) {
	cc, err := rtmp.Dial(ctx, url, rtmp.ClientConfig{})
	if err != nil {
		return nil, err
	}
	if err := cc.Publish(ctx, name); err != nil {
		cc.Close()
		return nil, err
	}
	return cc, nil
}

// feed writes 25 fps of H.264/AAC-shaped tags until ctx ends.
func feed(ctx context.Context, cc *rtmp.ClientConn) {
	cc.WriteMessage(rtmp.Message{Type: rtmp.TypeVideo, Payload: []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff}})
	cc.WriteMessage(rtmp.Message{Type: rtmp.TypeAudio, Payload: []byte{0xAF, 0, 0x12, 0x10}})
	t := time.NewTicker(40 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b := byte(0x27)
		if i%25 == 0 {
			b = 0x17
		}
		ts := uint32(i * 40)
		if cc.WriteMessage(rtmp.Message{Type: rtmp.TypeVideo, Timestamp: ts, Payload: []byte{b, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}}) != nil {
			return
		}
		if cc.WriteMessage(rtmp.Message{Type: rtmp.TypeAudio, Timestamp: ts + 5, Payload: []byte{0xAF, 1, 0x21}}) != nil {
			return
		}
	}
}

// With no control-plane replica reachable, an origin authorises nothing
// new: a publish is refused with a reason that says why.
func TestOriginFailsClosedWithoutControlPlane(t *testing.T) {
	r := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: deadURL(t) + "," + deadURL(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := publishSynthetic(t, ctx, "rtmp://"+r.RTMPAddr().String()+"/live", "foo?key=good")
	var se *rtmp.StatusError
	if !errors.As(err, &se) || se.Description != "control plane unreachable" {
		t.Fatalf("publish without control plane: %v, want refusal \"control plane unreachable\"", err)
	}
	if code := get(t, r, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d without a control plane, want 503", code)
	}
	if code := get(t, r, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
}

func TestOriginEdgeStaticFallback(t *testing.T) {
	cp := &allowAll{}
	hs := httptest.NewServer(cp)
	defer hs.Close()
	origin := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL})
	// The edge's control plane is down: it pulls from the static list.
	edge := start(t, Params{Role: RoleEdge, Name: "edge-1", ControlURL: deadURL(t),
		StaticOrigins: []string{origin.RTMPAddr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := publishSynthetic(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live", "foo?key=bad"); err == nil {
		t.Fatal("publish with a wrong key accepted")
	}
	pub, err := publishSynthetic(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live", "foo?key=good")
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	go feed(fctx, pub)

	play, err := rtmp.Dial(ctx, "rtmp://"+edge.RTMPAddr().String()+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	if err := play.Play(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 20; n++ {
		if _, err := play.ReadMessage(); err != nil {
			t.Fatalf("edge play: %v", err)
		}
	}
	est, ok := findStatus(edge.Streams(), "live/foo")
	if !ok || est.Upstream != origin.RTMPAddr().String() || est.Players != 1 {
		t.Fatalf("edge stream = %+v", est)
	}
	ost, _ := findStatus(origin.Streams(), "live/foo")
	if ost.Players != 1 || !ost.Live {
		t.Fatalf("origin stream = %+v", ost)
	}
	// Heartbeats carry the published streams.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp.mu.Lock()
		var found bool
		for _, hb := range cp.heartbeats {
			pubs, _ := hb["published"].([]any)
			streams, _ := hb["streams"].([]any)
			if len(pubs) == 1 && pubs[0] == "live/foo" && len(streams) == 1 {
				// The stream's statistics: publisher, codecs as sent by
				// publishSynthetic, and the edge's upstream as one player.
				st, _ := streams[0].(map[string]any)
				found = st["path"] == "live/foo" && st["publisher"] == true && st["players"] == float64(1) &&
					st["video_codec"] == "h264"
			}
		}
		cp.mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat with published [live/foo] and its statistics (1 player, h264)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + edge.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"portier_relay_upstream_sessions{node=\"edge-1\",role=\"edge\"} 1", "portier_relay_players{", "portier_relay_bytes_out_total{"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func findStatus(list []StreamStatus, path string) (StreamStatus, bool) {
	for _, s := range list {
		if s.Path == path {
			return s, true
		}
	}
	return StreamStatus{}, false
}

func get(t *testing.T, r *Relay, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + r.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestParamsValidation(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Name: "n", RTMPAddr: ":1"}, "--role is required"},
		{Params{Role: "x", Name: "n", RTMPAddr: ":1"}, "want origin or edge"},
		{Params{Role: RoleOrigin, Name: "n", RTMPAddr: ":1"}, "needs --control"},
		{Params{Role: RoleEdge, Name: "n", RTMPAddr: ":1"}, "--control or --origins"},
		{Params{Role: RoleEdge, Name: "n", RTMPAddr: ":1", StaticOrigins: []string{"nohost"}}, "want host:port"},
	} {
		if _, err := New(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.p, err, tc.want)
		}
	}
}
