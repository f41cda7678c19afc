package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/hlssim"
)

// HLS in the cluster: one 160x90 rendition at 10 fps, 100 kbit/s (about the
// smallest ladder the compiler allows: a few percent of a core), in 1 s
// segments. Not a copy rendition: its segments are cut at the source's key
// frames, and the first segment of a new runner can be longer than the
// others, so its playlists' EXT-X-TARGETDURATION went 1 → 2 → 1 after a
// failover (RFC 8216 forbids a change; the checker flagged it in 3 of 9
// runs). The origin now keeps the highest target published, which removes
// the fall but not the rise; an encoded rendition gets a key frame at each
// boundary and needs neither.
const (
	hlsSegment  = time.Second
	hlsLiveSync = 3 // segments behind the live edge a viewer starts (hls.js's default)
	// taskRecovery is the bound on a task running again after it
	// lost its host.
	taskRecovery = 10 * time.Second
	// hlsStallBound is the longest stall a viewer may see. A viewer holds
	// hlsLiveSync segments when the HLS task's host dies; the task runs
	// again within taskRecovery; its first segment is listed one segment
	// later and uploaded within another; the viewer notices it at its next
	// playlist reload, at most one target duration later. So: taskRecovery
	// + 3 segments − hlsLiveSync segments.
	hlsStallBound = taskRecovery + 3*hlsSegment - hlsLiveSync*hlsSegment
)

func (c *cluster) addHLSOrigin(n *node) {
	n.dataDir = c.t.TempDir()
	n.args = []string{"hls-origin", "--name", n.name, "--control", c.controlLinks(n), "--cluster-token", clusterToken,
		"--http-addr", n.ip + ":8090", "--advertise-http-addr", n.ip + ":8090", "--storage", n.dataDir, "--log-level", "warn"}
	n.health = "http://" + n.ip + ":8090/readyz"
}

func (c *cluster) addCDNEdge(name string) *node {
	n := c.newNode(name, "cdn-edge")
	n.args = []string{"cdn-edge", "--name", name, "--control", c.controlLinks(n), "--cluster-token", clusterToken,
		"--http-addr", n.ip + ":8095", "--advertise-http-addr", n.ip + ":8095", "--origin", "http://" + c.hlsOrigin.ip + ":8090",
		"--log-level", "warn"}
	n.health = "http://" + n.ip + ":8095/readyz"
	c.cdnEdges = append(c.cdnEdges, n)
	return n
}

// hlsWatch follows a stream's HLS through the control plane's rewriter
// while the chaos runs: simulated viewers (tests/hlssim) play it, and a
// checker (tests/hlscheck) reads the playlists every half second, reads
// every listed segment through the CDN edge the rewriter chose, and
// remembers when the media sequence last advanced.
type hlsWatch struct {
	master string
	cancel context.CancelFunc
	done   chan struct{}
	sim    *hlssim.Result
	check  *hlscheck.Checker

	mu       sync.Mutex
	lastSeq  int64     // highest media sequence listed
	advanced time.Time // when lastSeq last rose
	readErrs int
	reads    int
	edges    map[string]int // segment reads per edge host
}

func watchHLS(master string, viewers int) *hlsWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &hlsWatch{master: master, cancel: cancel, done: make(chan struct{}), check: hlscheck.NewChecker().RequireProgramDateTime(),
		edges: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		w.sim = hlssim.Run(ctx, hlssim.Params{Master: master, Viewers: viewers, StartSpread: 2 * time.Second,
			Duration: time.Hour, LiveSync: hlsLiveSync, Variant: func(int, int) int { return 0 }})
	})
	wg.Go(func() { w.poll(ctx) })
	go func() { wg.Wait(); close(w.done) }()
	return w
}

var hlsClient = &http.Client{Timeout: 5 * time.Second}

func fetchURL(u string) ([]byte, error) {
	resp, err := hlsClient.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	return b, err
}

func (w *hlsWatch) poll(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := w.check.Poll(fetchURL, w.master); err == nil {
			w.readSegments()
		}
		select {
		case <-ctx.Done():
		case <-time.After(hlsSegment / 2):
		}
	}
}

// readSegments reads each listed segment it has not read yet through its
// edge, and checks the bytes by the segment's path: the same path must
// serve the same bytes whichever edge, signature or reader asks.
func (w *hlsWatch) readSegments() {
	for _, pl := range w.check.URLs() {
		vs := w.check.Versions(pl)
		if len(vs) == 0 {
			continue
		}
		m := vs[len(vs)-1]
		for _, s := range m.Segments {
			w.mu.Lock()
			if s.Seq > w.lastSeq {
				w.lastSeq, w.advanced = s.Seq, time.Now()
			}
			w.mu.Unlock()
			u, err := url.Parse(s.URI)
			if err != nil || !u.IsAbs() {
				continue
			}
			b, err := fetchURL(s.URI)
			w.mu.Lock()
			if err != nil {
				w.readErrs++
			} else {
				w.reads++
				w.edges[u.Host]++
			}
			w.mu.Unlock()
			if err == nil {
				w.check.Segment(u.Path, b)
			}
		}
	}
}

// seq returns the highest media sequence listed so far and when it rose.
func (w *hlsWatch) seq() (int64, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastSeq, w.advanced
}

// stop ends the viewers and the checker and waits for them.
func (w *hlsWatch) stop() {
	w.cancel()
	<-w.done
}
