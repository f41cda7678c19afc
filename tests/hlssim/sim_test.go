package hlssim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/media/cdnedge"
	"github.com/portier/portier/portier/hlsrewrite"
)

// liveOrigin is an HLS origin in memory: streams of two renditions whose
// live window of 6 segments advances every seg; it counts segment reads.
type liveOrigin struct {
	seg     time.Duration
	start   time.Time
	size    int
	mu      sync.Mutex
	reads   map[string]int // segment path → origin reads
	nreads  atomic.Int64
	payload []byte
}

func (o *liveOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/hls/s/"), "/")
	if r.URL.Path == "/healthz" {
		return
	}
	switch {
	case len(parts) == 2 && parts[1] == "master.m3u8":
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		fmt.Fprint(w, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv0/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=300000\nv1/index.m3u8\n")
	case len(parts) == 3 && parts[2] == "index.m3u8":
		last := int(time.Since(o.start) / o.seg)
		first := max(last-5, 0)
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		// Cache headers as media/hlsorigin sends them: playlists for half
		// a target duration (at least 1 s), segments immutable.
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(max(1, int(o.seg.Seconds()+0.5)/2)))
		fmt.Fprintf(w, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", int(o.seg.Seconds()+0.5), first)
		for i := first; i <= last; i++ {
			fmt.Fprintf(w, "#EXTINF:%.3f,\nseg_%d.ts\n", o.seg.Seconds(), i)
		}
	case len(parts) == 3 && strings.HasSuffix(parts[2], ".ts"):
		o.mu.Lock()
		o.reads[r.URL.Path]++
		o.mu.Unlock()
		o.nreads.Add(1)
		w.Header().Set("Content-Type", "video/mp2t")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(o.payload)))
		_, _ = w.Write(o.payload)
	default:
		http.NotFound(w, r)
	}
}

// simDir is the rewriter's directory: the in-process edges, "heartbeating"
// every second with their active requests, minus the dead ones.
type simDir struct {
	mu    sync.Mutex
	edges []*simEdge
	hb    time.Time
}

type simEdge struct {
	name string
	e    *cdnedge.Edge
	srv  *httptest.Server
	dead atomic.Bool
}

func (d *simDir) Edges(context.Context) ([]hlsrewrite.Edge, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.hb) >= time.Second {
		d.hb = time.Now()
	}
	var out []hlsrewrite.Edge
	for _, e := range d.edges {
		if e.dead.Load() {
			continue // no heartbeat: out after the alive window at the latest
		}
		out = append(out, hlsrewrite.Edge{Name: e.name, BaseURL: e.srv.URL, CapacityMbps: 1000,
			ActiveRequests: e.e.Load().ActiveRequests, LastHeartbeat: d.hb})
	}
	return out, nil
}

func (d *simDir) StreamByName(_ context.Context, app, name string) (hlsrewrite.Stream, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(name, "s"), 10, 64)
	if app != "live" || err != nil {
		return hlsrewrite.Stream{}, hlsrewrite.ErrNotFound
	}
	return hlsrewrite.Stream{ID: id, Public: true}, nil
}

type simCluster struct {
	origin   *liveOrigin
	dir      *simDir
	rw       *hlsrewrite.Rewriter
	rwSrv    *httptest.Server
	edgeHost map[string]*simEdge
}

func startSim(t *testing.T, ctx context.Context, depth int, seg time.Duration) *simCluster {
	t.Helper()
	o := &liveOrigin{seg: seg, start: time.Now().Add(-10 * seg), reads: map[string]int{}, payload: make([]byte, 32<<10)}
	osrv := httptest.NewServer(o)
	t.Cleanup(osrv.Close)
	c := &simCluster{origin: o, dir: &simDir{}, edgeHost: map[string]*simEdge{}}
	for i := range 3 {
		e, err := cdnedge.New(cdnedge.Params{Origins: []string{osrv.URL}, ClusterToken: "sim-token"})
		if err != nil {
			t.Fatal(err)
		}
		se := &simEdge{name: fmt.Sprintf("edge-%d", i), e: e, srv: httptest.NewServer(e.HTTPHandler())}
		t.Cleanup(func() { se.srv.Close(); e.Close() })
		c.dir.edges = append(c.dir.edges, se)
		c.edgeHost[strings.TrimPrefix(se.srv.URL, "http://")] = se
	}
	rw, err := hlsrewrite.New(hlsrewrite.Params{Directory: c.dir, Origin: &hlsrewrite.HTTPOrigin{BaseURLs: []string{osrv.URL}, ClusterToken: "sim-token", Client: http.DefaultClient},
		Secret: hlssign.Secret("sim-token"), KeyDepth: depth})
	if err != nil {
		t.Fatal(err)
	}
	rw.Start(ctx)
	c.rw = rw
	c.rwSrv = httptest.NewServer(rw)
	t.Cleanup(c.rwSrv.Close)
	return c
}

// kill stops an edge like a SIGKILL: its listener and connections close
// and it stops heartbeating.
func (c *simCluster) kill(se *simEdge) {
	se.dead.Store(true)
	se.srv.CloseClientConnections()
	se.srv.Listener.Close()
}

// TestSimKeyDepths measures the three key depths with the same viewers:
// 300 viewers over 12 streams (viewer i watches stream i mod 12 when i is
// odd, else stream 1: one hot stream and a tail), 1 s segments, 20 s.
// It checks what must hold at every depth (no discarded reload, at most
// one origin read per segment per edge) and logs the numbers the default
// is chosen from.
func TestSimKeyDepths(t *testing.T) {
	if testing.Short() {
		t.Skip("a 60 s simulation")
	}
	viewers, dur := 300, 20*time.Second
	if raceEnabled {
		t.Skip("timing claims mean nothing under the race detector (see TestSimRace)")
	}
	if s := os.Getenv("PORTIER_HLSSIM_VIEWERS"); s != "" {
		viewers, _ = strconv.Atoi(s)
	}
	for _, depth := range []int{hlsrewrite.DepthStream, hlsrewrite.DepthRendition, hlsrewrite.DepthSegment} {
		ctx, cancel := context.WithCancel(context.Background())
		c := startSim(t, ctx, depth, time.Second)
		master := func(i int) string {
			s := 1
			if i%2 == 1 {
				s = 1 + i%12
			}
			return fmt.Sprintf("%s/hls/live/s%d/master.m3u8", c.rwSrv.URL, s)
		}
		var wg sync.WaitGroup
		results := make([]*Result, viewers)
		for i := range viewers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = Run(ctx, Params{Master: master(i), Viewers: 1, Duration: dur})
			}()
			time.Sleep(5 * time.Millisecond) // spread the starts over 1.5 s
		}
		wg.Wait()
		cancel()
		all := &Result{}
		for _, r := range results {
			all.Viewers = append(all.Viewers, r.Viewers...)
		}
		sum := all.Summarize(time.Time{}, time.Time{})
		c.origin.mu.Lock()
		segs, reads, most := len(c.origin.reads), 0, 0
		for _, n := range c.origin.reads {
			reads += n
			most = max(most, n)
		}
		c.origin.mu.Unlock()
		t.Logf("depth %d: origin reads per segment %.2f (%d reads, %d segments, at most %d of one segment); %s",
			depth, float64(reads)/float64(segs), reads, segs, most, sum)
		// Each segment is frozen on one edge, so the whole fleet reads it
		// from the origin once: at most one read per segment per edge.
		if sum.Discarded > 0 || sum.Failed > 0 || most > 1 {
			t.Errorf("depth %d: %d discarded reloads, %d failed viewers, a segment read %d times from the origin", depth, sum.Discarded, sum.Failed, most)
		}
		if depth == hlsrewrite.DefaultKeyDepth {
			for h, n := range sum.PerEdge {
				if b := sum.Bound(hlsrewrite.DefaultBalanceFactor, len(sum.PerEdge)); n > b {
					t.Errorf("default depth: edge %s served %d segment requests, over ⌈c · average⌉ = %d", h, n, b)
				}
			}
		}
	}
}

// TestSimEdgeDeath: 300 viewers of one stream on 3 edges (2 s segments);
// one edge dies at 15 s; every viewer keeps playing with at most one stall
// of at most 2 target durations, and no reload is discarded.
func TestSimEdgeDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("a 40 s simulation")
	}
	if raceEnabled {
		t.Skip("timing claims mean nothing under the race detector (see TestSimRace)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startSim(t, ctx, hlsrewrite.DefaultKeyDepth, 2*time.Second)
	viewers := 300
	done := make(chan *Result)
	go func() {
		done <- Run(ctx, Params{Master: c.rwSrv.URL + "/hls/live/s1/master.m3u8", Viewers: viewers, StartSpread: 2 * time.Second, Duration: 38 * time.Second})
	}()
	time.Sleep(15 * time.Second) // the kill happens at a fixed point of the run
	var victim *simEdge
	busiest := -1.0
	for _, se := range c.dir.edges {
		if n := edgeServed(se.e); n > busiest {
			victim, busiest = se, n
		}
	}
	killAt := time.Now()
	c.kill(victim)
	res := <-done
	sum := res.Summarize(killAt, time.Time{})
	t.Logf("killed %s (served %v) at 15 s: %s", victim.name, busiest, sum)
	if sum.Failed > 0 || sum.Discarded > 0 || sum.MaxStalls > 1 || sum.MaxStall > 2*sum.Target {
		t.Fatalf("after the kill: %s; want every viewer with at most one stall of at most %v", sum, 2*sum.Target)
	}
}

func edgeServed(e *cdnedge.Edge) float64 {
	mfs, _ := e.Registry().Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "portier_cdn_edge_requests_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestSimRace runs the simulator, the rewriter and the edges briefly (20
// viewers, 8 s, an edge killed) for the race detector; it checks only
// that viewers play and no reload is discarded.
func TestSimRace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startSim(t, ctx, hlsrewrite.DefaultKeyDepth, time.Second)
	done := make(chan *Result)
	go func() {
		done <- Run(ctx, Params{Master: c.rwSrv.URL + "/hls/live/s1/master.m3u8", Viewers: 20, StartSpread: time.Second, Duration: 8 * time.Second})
	}()
	time.Sleep(4 * time.Second) // the kill happens at a fixed point of the run
	c.kill(c.dir.edges[0])
	sum := (<-done).Summarize(time.Time{}, time.Time{})
	if sum.Failed > 0 || sum.Discarded > 0 || sum.Segments == 0 {
		t.Fatalf("%s", sum)
	}
}
