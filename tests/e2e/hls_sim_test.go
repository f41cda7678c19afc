package e2e

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/portier/hlsrewrite"
	"github.com/portier/portier/tests/hlssim"
)

// TestHLSSimulatedViewersOnRealEdges: simulated hls.js viewers
// (tests/hlssim) play a live HLS task through the rewriter of a real
// `portier run` and 3 real `portier cdn-edge` processes. In the first
// 25 s: every edge reads each segment it serves from the origin at most
// once, and no edge serves more than ⌈c · average⌉ of the segment
// requests. Then the busiest edge is killed with SIGKILL: for 25 s more
// every viewer keeps playing with at most one stall of at most 2 target
// durations, no viewer's playlist reload is discarded by hls.js's
// mismatch rule, and no viewer fails. PORTIER_HLSSIM_VIEWERS sets the
// number of viewers (default 500; it runs on a 2-core machine).
func TestHLSSimulatedViewersOnRealEdges(t *testing.T) {
	if raceEnabled {
		t.Skip("the viewers' timing means nothing under the race detector: make test runs this without it")
	}
	viewers := 500
	if s := os.Getenv("PORTIER_HLSSIM_VIEWERS"); s != "" {
		viewers, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	rc := startRewriteCluster(t, ctx, 3)
	hosts := map[string]*relayProc{}
	for _, e := range rc.edges {
		hosts[e.httpAddr] = e
	}
	missesBefore := map[string]float64{}
	for h := range hosts {
		missesBefore[h] = edgeMissCount(t, h)
	}
	done := make(chan *hlssim.Result, 1)
	t0 := time.Now()
	go func() {
		done <- hlssim.Run(ctx, hlssim.Params{Master: rc.play, Viewers: viewers, StartSpread: 3 * time.Second, Duration: 52 * time.Second})
	}()
	time.Sleep(25 * time.Second) // the kill happens at a fixed point of the run
	tKill := time.Now()
	missesAtKill := map[string]float64{}
	for h := range hosts {
		missesAtKill[h] = edgeMissCount(t, h)
	}
	// Kill the edge that served the most so far.
	var victim *relayProc
	most := -1.0
	for h, e := range hosts {
		if n := missesAtKill[h] - missesBefore[h]; n > most {
			victim, most = e, n
		}
	}
	victim.kill(syscall.SIGKILL)
	res := <-done

	first := res.Summarize(t0.Add(5*time.Second), tKill) // after start-up, before the kill
	t.Logf("%d viewers, before the kill: %s", viewers, first)
	for h, n := range first.PerEdge {
		if b := first.Bound(hlsrewrite.DefaultBalanceFactor, len(first.PerEdge)); n > b {
			t.Errorf("before the kill edge %s served %d segment requests, over ⌈c · average⌉ = %d", h, n, b)
		}
	}
	// Misses read at the kill are of requests that completed by then or
	// shortly after: compare with the segments served up to 2 s later.
	whole := res.Summarize(time.Time{}, tKill.Add(2*time.Second))
	for h, n := range whole.DistinctPerEdge {
		if misses := missesAtKill[h] - missesBefore[h]; misses > float64(n) {
			t.Errorf("edge %s read %v segments from the origin for %d distinct segments served", h, misses, n)
		}
	}
	after := res.Summarize(tKill, time.Time{})
	t.Logf("killed %s at %v; after the kill: %s", victim.name, tKill.Sub(t0).Round(time.Millisecond), after)
	if after.Failed > 0 || whole.Discarded > 0 || after.Discarded > 0 || after.MaxStalls > 1 || after.MaxStall > 2*after.Target {
		t.Fatalf("after the kill: %s; want no failed viewer, no discarded reload, at most one stall of at most %v per viewer", after, 2*after.Target)
	}
}

var missRE = regexp.MustCompile(`(?m)^portier_cdn_edge_requests_total\{result="miss"\} (\S+)$`)

// edgeMissCount is the edge's count of requests that started an origin fetch.
func edgeMissCount(t *testing.T, addr string) float64 {
	t.Helper()
	m := missRE.FindStringSubmatch(metricsText(t, addr))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
