package edge

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// testOrigin is a scripted RTMP origin built on media/rtmp's server
// connection: it serves one stream (H.264/AAC-shaped tags) to players from
// its own clock base, or refuses with StreamNotFound, and can be killed
// (listener and every connection closed at once, as when a process dies).
type testOrigin struct {
	t      *testing.T
	ln     net.Listener
	name   string
	base   uint32
	mu     sync.Mutex
	conns  []net.Conn
	plays  int
	killed chan struct{}
}

func startOrigin(t *testing.T, name string, base uint32) *testOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &testOrigin{t: t, ln: ln, name: name, base: base, killed: make(chan struct{})}
	go o.serve()
	t.Cleanup(o.kill)
	return o
}

func (o *testOrigin) addr() string { return o.ln.Addr().String() }

func (o *testOrigin) kill() {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.killed:
		return
	default:
	}
	close(o.killed)
	o.ln.Close()
	for _, c := range o.conns {
		c.Close()
	}
}

func (o *testOrigin) serve() {
	for {
		nc, err := o.ln.Accept()
		if err != nil {
			return
		}
		o.mu.Lock()
		o.conns = append(o.conns, nc)
		o.mu.Unlock()
		go o.handle(nc)
	}
}

func (o *testOrigin) handle(nc net.Conn) {
	c := rtmp.NewServerConn(nc, rtmp.ServerConfig{})
	req, err := c.Accept(context.Background())
	if err != nil {
		return
	}
	if req.Kind != rtmp.KindPlay || req.App+"/"+req.Name != o.name {
		c.Reject("NetStream.Play.StreamNotFound", "no such stream")
		return
	}
	if err := c.AcceptPlay(); err != nil {
		return
	}
	o.mu.Lock()
	o.plays++
	o.mu.Unlock()
	ts := o.base
	write := func(m rtmp.Message) bool { return c.WriteMessage(m) == nil }
	if !write(videoHeader(ts)) || !write(rtmp.Message{Type: rtmp.TypeAudio, Timestamp: ts, Payload: []byte{0xAF, 0, 0x12, 0x10}}) {
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-o.killed:
			return
		case <-c.Done():
			return
		case <-tick.C:
		}
		if !write(video(ts, i%10 == 0)) || !write(audio(ts+3)) {
			return
		}
		ts += 40
	}
}

func TestEdgeFailoverKeepsReader(t *testing.T) {
	a := startOrigin(t, "live/test", 1_000)
	b := startOrigin(t, "live/test", 9_000_000)
	missing := startOrigin(t, "live/other", 0)

	e := New(Params{StaticOrigins: []string{missing.addr(), a.addr(), b.addr()}, NoOriginTimeout: 300 * time.Millisecond,
		UpstreamReadTimeout: 300 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	hub := stream.NewHub(stream.HubParams{OnDemand: e.OnDemand, IdleTimeout: 200 * time.Millisecond, PublisherGrace: 100 * time.Millisecond})
	e.SetHub(hub)
	defer hub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := hub.Read(ctx, "live/test", stream.ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		u  *stream.Unit
		at time.Time
	}
	var mu sync.Mutex
	var units []got
	readErr := make(chan error, 1)
	go func() {
		for {
			batch, err := r.Next(ctx)
			if err != nil {
				readErr <- err
				return
			}
			now := time.Now()
			mu.Lock()
			for _, u := range batch {
				units = append(units, got{u, now})
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(units) }
	testutil.Eventually(t, 10*time.Second, "30 units from the first origin", func() bool { return count() >= 30 })
	if up, _ := e.Upstream("live/test"); up.Origin != a.addr() {
		t.Fatalf("upstream = %q, want the first origin with the stream %q", up.Origin, a.addr())
	}
	if s := e.Stats(); s.UpstreamSessions != 1 {
		t.Fatalf("upstream sessions = %d, want 1", s.UpstreamSessions)
	}

	killedAt := time.Now()
	a.kill()
	before := count()
	testutil.Eventually(t, 10*time.Second, "units from the second origin", func() bool {
		up, _ := e.Upstream("live/test")
		return up.Origin == b.addr() && count() > before+20
	})
	if s := e.Stats(); s.Failovers != 1 || s.UpstreamSessions != 1 {
		t.Fatalf("stats after failover = %+v, want 1 failover and 1 session", s)
	}

	mu.Lock()
	last := map[stream.Kind]int64{}
	var maxGap time.Duration
	var prevAt time.Time
	// The switch is the longest arrival gap after the kill: units the
	// first origin had sent may still reach the reader after killedAt (they
	// were in the hub), in a burst; the second origin's first unit comes
	// after the reconnect.
	firstAfter, switchGap := -1, time.Duration(-1)
	var headerGap time.Duration // a gap before header units counts for the media unit after them
	for i, g := range units {
		if prev, ok := last[g.u.Kind]; ok && g.u.DTS < prev {
			t.Errorf("unit %d: %v DTS %d after %d", i, g.u.Kind, g.u.DTS, prev)
		}
		last[g.u.Kind] = g.u.DTS
		gap := g.at.Sub(prevAt)
		if !prevAt.IsZero() && gap > maxGap {
			maxGap = gap
		}
		if !prevAt.IsZero() && g.at.After(killedAt) {
			if g.u.Header {
				headerGap = max(headerGap, gap)
			} else {
				if gap = max(gap, headerGap); gap > switchGap {
					firstAfter, switchGap = i, gap
				}
				headerGap = 0
			}
		}
		prevAt = g.at
	}
	if firstAfter < 0 || units[firstAfter].u.Kind != stream.KindVideo || !units[firstAfter].u.Key {
		t.Errorf("first media unit after the switch is not a keyframe: %+v", units[firstAfter].u)
	}
	if d := units[firstAfter].u.DTS - units[firstAfter-1].u.DTS; d <= 0 || d > 100 {
		t.Errorf("DTS step across the switch = %d ms, want one frame interval", d)
	}
	mu.Unlock()
	t.Logf("failover: max arrival gap %v", maxGap)
	if maxGap > time.Second {
		t.Errorf("arrival gap %v, want < 1 s", maxGap)
	}

	// No origin left: the reader is told the stream ended.
	b.kill()
	select {
	case err := <-readErr:
		if !errors.Is(err, stream.ErrEnded) {
			t.Fatalf("reader error %v, want ErrEnded", err)
		}
	case <-ctx.Done():
		t.Fatal("reader not ended after every origin died")
	}
	r.Close()
	testutil.Eventually(t, 10*time.Second, "puller gone", func() bool { return len(e.Upstreams()) == 0 && e.Stats().UpstreamSessions == 0 })
	if s := e.Stats(); s.EndedNoOrigin != 1 {
		t.Fatalf("ended_no_origin = %d, want 1", s.EndedNoOrigin)
	}
}

func TestEdgeOneSessionManyReadersAndIdleClose(t *testing.T) {
	a := startOrigin(t, "live/test", 0)
	e := New(Params{StaticOrigins: []string{a.addr()}})
	hub := stream.NewHub(stream.HubParams{OnDemand: e.OnDemand, IdleTimeout: 100 * time.Millisecond})
	e.SetHub(hub)
	defer hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var readers []*stream.Reader
	for range 20 {
		r, err := hub.Read(ctx, "live/test", stream.ReaderParams{})
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	for _, r := range readers {
		if _, err := r.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Lock()
	plays := a.plays
	a.mu.Unlock()
	if plays != 1 || e.Stats().UpstreamSessions != 1 {
		t.Fatalf("origin saw %d plays, edge has %d sessions; want 1 and 1", plays, e.Stats().UpstreamSessions)
	}
	for _, r := range readers {
		r.Close()
	}
	testutil.Eventually(t, 10*time.Second, "idle puller closed", func() bool { return e.Stats().UpstreamSessions == 0 && len(e.Upstreams()) == 0 })
}
