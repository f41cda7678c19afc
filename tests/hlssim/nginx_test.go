package hlssim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/portier/hlsrewrite"
	"github.com/portier/portier/tests/peers"
)

// nginxDir is the rewriter's directory of nginx edges (deploy/nginx's
// proxy_cache config). nginx does not heartbeat: the test marks an edge
// dead when it kills it, as the missing heartbeats would.
type nginxDir struct {
	mu    sync.Mutex
	edges []*peers.NginxEdge
	dead  map[*peers.NginxEdge]bool
}

func (d *nginxDir) Edges(context.Context) ([]hlsrewrite.Edge, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []hlsrewrite.Edge
	for i, e := range d.edges {
		if d.dead[e] {
			continue
		}
		out = append(out, hlsrewrite.Edge{Name: "nginx-" + string(rune('a'+i)), BaseURL: "http://" + e.HTTPAddr,
			CapacityMbps: 1000, LastHeartbeat: time.Now()})
	}
	return out, nil
}

func (d *nginxDir) StreamByName(ctx context.Context, app, name string) (hlsrewrite.Stream, error) {
	return (&simDir{}).StreamByName(ctx, app, name)
}

// TestSimNginxEdges: the viewers of TestSimEdgeDeath on deploy/nginx's
// proxy_cache edge config instead of `portier cdn-edge`: 300 simulated
// hls.js viewers of one stream (2 s segments) through the rewriter and 3
// real nginx processes; each nginx reads each segment from the origin at
// most once (proxy_cache_lock), no reload is discarded; one nginx is
// killed at 15 s and every viewer keeps playing with at most one stall of
// at most 2 target durations.
func TestSimNginxEdges(t *testing.T) {
	if testing.Short() {
		t.Skip("a 40 s simulation")
	}
	if raceEnabled {
		t.Skip("timing claims mean nothing under the race detector (see TestSimRace)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seg := 2 * time.Second
	o := &liveOrigin{seg: seg, start: time.Now().Add(-10 * seg), reads: map[string]int{}, payload: make([]byte, 32<<10)}
	osrv := httptest.NewServer(o)
	t.Cleanup(osrv.Close)
	dir := &nginxDir{dead: map[*peers.NginxEdge]bool{}}
	for range 3 {
		dir.edges = append(dir.edges, peers.NginxCDNEdge(t, peers.NginxEdgeOpts{
			Origin: strings.TrimPrefix(osrv.URL, "http://"), ClusterToken: "sim-token", PlaySecret: hlssign.Secret("sim-token")}))
	}
	rw, err := hlsrewrite.New(hlsrewrite.Params{Directory: dir,
		Origin: &hlsrewrite.HTTPOrigin{BaseURLs: []string{osrv.URL}, ClusterToken: "sim-token", Client: http.DefaultClient},
		Secret: hlssign.Secret("sim-token")})
	if err != nil {
		t.Fatal(err)
	}
	rw.Start(ctx)
	rwSrv := httptest.NewServer(rw)
	t.Cleanup(rwSrv.Close)

	done := make(chan *Result)
	go func() {
		done <- Run(ctx, Params{Master: rwSrv.URL + "/hls/live/s1/master.m3u8", Viewers: 300, StartSpread: 2 * time.Second, Duration: 38 * time.Second})
	}()
	time.Sleep(15 * time.Second) // the kill happens at a fixed point of the run
	o.mu.Lock()
	most := 0
	for _, n := range o.reads {
		most = max(most, n)
	}
	segs := len(o.reads)
	o.mu.Unlock()
	if most > len(dir.edges) {
		t.Errorf("a segment was read %d times from the origin through %d nginx edges, want at most one per edge", most, len(dir.edges))
	}
	victim := dir.edges[0]
	killAt := time.Now()
	victim.Proc.Kill()
	dir.mu.Lock()
	dir.dead[victim] = true
	dir.mu.Unlock()
	res := <-done
	before := res.Summarize(time.Time{}, killAt)
	after := res.Summarize(killAt, time.Time{})
	t.Logf("before the kill (%d segments, at most %d origin reads of one): %s", segs, most, before)
	t.Logf("after killing one nginx at 15 s: %s", after)
	if before.Failed > 0 || before.Discarded > 0 {
		t.Errorf("before the kill: %s", before)
	}
	if after.Failed > 0 || after.Discarded > 0 || after.MaxStalls > 1 || after.MaxStall > 2*after.Target {
		t.Fatalf("after the kill: %s; want every viewer with at most one stall of at most %v", after, 2*after.Target)
	}
}
