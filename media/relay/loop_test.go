package relay

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/rtmp"
)

// startAt is start with a fixed RTMP address (HTTP on a free port).
func startAt(t *testing.T, p Params, rtmpAddr string) *Relay {
	t.Helper()
	p.RTMPAddr, p.HTTPAddr = rtmpAddr, "127.0.0.1:0"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// playFrom starts an RTMP player of live/NAME on relay r, which makes an
// edge pull; the player reads until the test ends.
func playFrom(t *testing.T, ctx context.Context, r *Relay, name string) {
	t.Helper()
	cc, err := rtmp.Dial(ctx, "rtmp://"+r.RTMPAddr().String()+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	if err := cc.Play(ctx, name); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := cc.ReadMessage(); err != nil {
				return
			}
		}
	}()
}

// An edge whose static origin is its own address never pulls from itself.
func TestEdgeRefusesItsOwnAddress(t *testing.T) {
	addr := freeAddr(t)
	e := startAt(t, Params{Role: RoleEdge, Name: "edge-self", StaticOrigins: []string{addr}, NoOriginTimeout: 3 * time.Second}, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A player makes the edge look for an origin (and is told the stream
	// was not found: there is none).
	go func() {
		cc, err := rtmp.Dial(ctx, "rtmp://"+addr+"/live", rtmp.ClientConfig{})
		if err != nil {
			return
		}
		defer cc.Close()
		_ = cc.Play(ctx, "x")
	}()
	testutil.Eventually(t, 5*time.Second, "the own address refused", func() bool { return e.Edge().Stats().LoopsRefused >= 1 })
	// Retries keep refusing it (logged once): no session ever starts.
	refusedAt := time.Now()
	testutil.Eventually(t, 5*time.Second, "a second of retries", func() bool { return time.Since(refusedAt) > time.Second })
	if st := e.Edge().Stats(); st.SessionsStarted != 0 {
		t.Fatalf("the edge pulled from itself: %+v", st)
	}
}

// fastOrigin is an RTMP server that answers every play with video tags as
// fast as it can write them (timestamps advancing 40 ms per frame), as a
// loop would deliver them. It stops when the player leaves.
func fastOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := rtmp.NewServerConn(nc, rtmp.ServerConfig{})
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := c.Accept(ctx); err != nil || c.AcceptPlay() != nil {
					return
				}
				_ = c.WriteMessage(rtmp.Message{Type: rtmp.TypeVideo, Payload: []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff}})
				for i := 0; ctx.Err() == nil; i++ {
					b := byte(0x27)
					if i%25 == 0 {
						b = 0x17
					}
					if c.WriteMessage(rtmp.Message{Type: rtmp.TypeVideo, Timestamp: uint32(i * 40), Payload: []byte{b, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}}) != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A pull that receives media much faster than real time is ended as a loop
// and the edge moves to another origin.
func TestEdgeEndsFastPullAsLoop(t *testing.T) {
	hs := httptest.NewServer(&allowAll{})
	defer hs.Close()
	origin := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL})
	fast := fastOrigin(t)
	e := start(t, Params{Role: RoleEdge, Name: "edge-1", StaticOrigins: []string{fast, origin.RTMPAddr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := publishSynthetic(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live", "loop?key=good")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go feed(ctx, pub)

	playFrom(t, ctx, e, "loop")
	testutil.Eventually(t, 10*time.Second, "the fast pull ended as a loop", func() bool { return e.Edge().Stats().LoopsEnded >= 1 })
	testutil.Eventually(t, 10*time.Second, "the edge pulling from the real origin", func() bool {
		up, ok := e.Edge().Upstream("live/loop")
		return ok && up.Origin == origin.RTMPAddr().String()
	})
	resp, err := http.Get("http://" + e.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `portier_relay_upstream_loops_ended_total{node="edge-1",role="edge"} 1`) {
		t.Errorf("metrics lack the loop count")
	}
}

// directoryNaming answers the stream directory with one node of the given
// role at addr; everything else as allowAll.
type directoryNaming struct {
	allowAll
	addr, role string
}

func (d *directoryNaming) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/internal/v1/directory/") {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"origins":[{"name":"other","rtmp_address":"`+d.addr+`","role":"`+d.role+`"}]}`)
		return
	}
	d.allowAll.ServeHTTP(w, r)
}

// Two edges that would pull from each other: when the directory names
// another edge, the edge refuses it and never dials.
func TestEdgeRefusesAnotherEdgeFromTheDirectory(t *testing.T) {
	other := start(t, Params{Role: RoleEdge, Name: "edge-2", StaticOrigins: []string{"127.0.0.1:9"}})
	dir := &directoryNaming{addr: other.RTMPAddr().String(), role: RoleEdge}
	hs := httptest.NewServer(dir)
	defer hs.Close()
	e := start(t, Params{Role: RoleEdge, Name: "edge-1", ControlURL: hs.URL, NoOriginTimeout: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		cc, err := rtmp.Dial(ctx, "rtmp://"+e.RTMPAddr().String()+"/live", rtmp.ClientConfig{})
		if err != nil {
			return
		}
		defer cc.Close()
		_ = cc.Play(ctx, "x")
	}()
	testutil.Eventually(t, 5*time.Second, "the other edge refused", func() bool { return e.Edge().Stats().LoopsRefused >= 1 })
	if st := e.Edge().Stats(); st.SessionsStarted != 0 {
		t.Fatalf("the edge pulled from another edge: %+v", st)
	}
	if st := other.Edge().Stats(); st.SessionsStarted != 0 {
		t.Fatalf("the other edge was asked to pull: %+v", st)
	}
}
