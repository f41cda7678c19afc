package hlsrewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/internal/httpcors"
)

// fakeDir is a Directory with edges the test changes.
type fakeDir struct {
	mu      sync.Mutex
	edges   []Edge
	streams map[string]Stream
	down    bool // Edges fails, as when the database is down
}

func (d *fakeDir) Edges(context.Context) ([]Edge, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, errors.New("database unreachable")
	}
	return append([]Edge(nil), d.edges...), nil
}

func (d *fakeDir) setDown(down bool) {
	d.mu.Lock()
	d.down = down
	d.mu.Unlock()
}

// heartbeat sets the last heartbeat of the named edges.
func (d *fakeDir) heartbeat(at time.Time, names ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.edges {
		if slices.Contains(names, d.edges[i].Name) {
			d.edges[i].LastHeartbeat = at
		}
	}
}

func (d *fakeDir) StreamByName(_ context.Context, app, name string) (Stream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.streams[app+"/"+name]
	if !ok {
		return Stream{}, ErrNotFound
	}
	return st, nil
}

func (d *fakeDir) drop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, e := range d.edges {
		if e.Name == name {
			d.edges = append(d.edges[:i], d.edges[i+1:]...)
			return
		}
	}
}

// fakeOrigin serves a live media playlist that gains a segment each time
// the test calls advance.
type fakeOrigin struct {
	mu      sync.Mutex
	first   int
	n       int
	fetches atomic.Int64
}

const testMaster = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nv0/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180\nv1/index.m3u8\n"

func (o *fakeOrigin) Fetch(_ context.Context, p string) ([]byte, error) {
	o.fetches.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if strings.HasSuffix(p, "/master.m3u8") {
		return []byte(testMaster), nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", o.first)
	for i := o.first; i < o.first+o.n; i++ {
		fmt.Fprintf(&b, "#EXTINF:2.000,\nseg_%d.ts\n", i)
	}
	return []byte(b.String()), nil
}

func (o *fakeOrigin) advance() {
	o.mu.Lock()
	o.first++
	o.mu.Unlock()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	dir    *fakeDir
	origin *fakeOrigin
	clk    *clock
	rw     *Rewriter
	srv    *httptest.Server
}

func newEnv(t *testing.T, depth int, public bool) *env {
	t.Helper()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	e := &env{clk: clk, origin: &fakeOrigin{n: 5}, dir: &fakeDir{streams: map[string]Stream{
		"live/cam": {ID: 7, Public: public}, "s/cam": {ID: 8, Public: true}}}}
	for i := range 3 {
		e.dir.edges = append(e.dir.edges, Edge{Name: fmt.Sprintf("edge-%d", i), BaseURL: fmt.Sprintf("http://edge%d.test:80", i),
			CapacityMbps: 1000, LastHeartbeat: clk.now()})
	}
	rw, err := New(Params{Directory: e.dir, Origin: e.origin, Secret: hlssign.Secret("tok"), KeyDepth: depth, NoProbe: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.rw = rw
	e.srv = httptest.NewServer(rw)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) get(t *testing.T, path string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var segLine = regexp.MustCompile(`(?m)^(http://[^/]+)(/hls/s/\d+/[^?]+)\?(.*)$`)

// segURIs maps segment path → URI without query (hls.js's comparison).
func segURIs(t *testing.T, body string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range segLine.FindAllStringSubmatch(body, -1) {
		out[m[2]] = m[1] + m[2]
	}
	if len(out) == 0 {
		t.Fatalf("no rewritten segment in\n%s", body)
	}
	return out
}

// TestMasterRewrite: media playlist URIs come back to the rewriter with the
// token and the pathway, every variant is on pathway g0 and the steering
// server is named.
func TestMasterRewrite(t *testing.T) {
	e := newEnv(t, DepthRendition, true)
	code, h, body := e.get(t, "/hls/live/cam/master.m3u8")
	if code != 200 || h.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("master: %d %v %s", code, h, body)
	}
	want := "#EXTM3U\n" +
		`#EXT-X-CONTENT-STEERING:SERVER-URI="` + e.srv.URL + `/hls/live/cam/steering.json?base=0",PATHWAY-ID="g0"` + "\n" +
		"#EXT-X-VERSION:3\n" +
		`#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,PATHWAY-ID="g0"` + "\n" +
		e.srv.URL + "/hls/live/cam/v0/index.m3u8?pw=0\n" +
		`#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,PATHWAY-ID="g0"` + "\n" +
		e.srv.URL + "/hls/live/cam/v1/index.m3u8?pw=0\n"
	if body != want {
		t.Fatalf("master:\n%s\nwant\n%s", body, want)
	}
}

// TestMediaRewriteSignedAndStable: segment URIs are signed absolute URLs
// on edges that verify them, and a listed segment keeps its URI across
// reloads while the loads change (hls.js's rule), for every key depth.
func TestMediaRewriteSignedAndStable(t *testing.T) {
	for _, depth := range []int{DepthStream, DepthRendition, DepthSegment} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			e := newEnv(t, depth, true)
			seen := map[string]string{}
			for round := range 20 {
				for v := range 30 { // many viewers: loads grow between reloads
					code, _, body := e.get(t, fmt.Sprintf("/hls/live/cam/v%d/index.m3u8?pw=0", v%2))
					if code != 200 {
						t.Fatalf("media: %d %s", code, body)
					}
					for p, u := range segURIs(t, body) {
						if old, ok := seen[p]; ok && old != u {
							t.Fatalf("round %d: %s moved from %s to %s", round, p, old, u)
						}
						seen[p] = u
					}
					for _, m := range segLine.FindAllStringSubmatch(body, -1) {
						q, _ := url.ParseQuery(m[3])
						if err := hlssign.Verify(hlssign.Secret("tok"), m[2], q, e.clk.now()); err != nil {
							t.Fatalf("%s: %v", m[0], err)
						}
					}
				}
				e.origin.advance()
				e.clk.add(2 * time.Second)
			}
			if depth == DepthStream {
				edges := map[string]bool{}
				for _, u := range seen {
					edges[u[:strings.Index(u, "/hls/")]] = true
				}
				t.Logf("depth stream: %d segments over %d edges", len(seen), len(edges))
			}
		})
	}
}

// TestCoalescedOriginFetches: 200 concurrent viewers of a playlist cost
// one origin fetch; after half a target duration, one more.
func TestCoalescedOriginFetches(t *testing.T) {
	e := newEnv(t, DepthRendition, true)
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/hls/live/cam/v0/index.m3u8", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := e.origin.fetches.Load(); n != 1 {
		t.Fatalf("200 viewers cost %d origin fetches, want 1", n)
	}
	e.clk.add(1100 * time.Millisecond)
	e.get(t, "/hls/live/cam/v0/index.m3u8")
	e.get(t, "/hls/live/cam/v0/index.m3u8")
	if n := e.origin.fetches.Load(); n != 2 {
		t.Fatalf("after half a target duration: %d origin fetches, want 2", n)
	}
}

// TestEdgeDeathNewPathway: when an edge leaves, pathway g0 keeps its URIs
// (a player still on it sees no change), pathway g1 lists every segment on
// a live edge, keeps the others' URIs, and the steering manifest clones
// g0 into g1 and puts it first.
func TestEdgeDeathNewPathway(t *testing.T) {
	e := newEnv(t, DepthSegment, true)
	_, _, b0 := e.get(t, "/hls/live/cam/v0/index.m3u8?pw=0")
	before := segURIs(t, b0)
	var dead string
	for _, u := range before {
		dead = u[len("http://") : len("http://")+len("edge0.test")]
		break
	}
	name := "edge-" + dead[len("edge"):len("edge")+1]
	e.dir.drop(name)
	if err := e.rw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, b0again := e.get(t, "/hls/live/cam/v0/index.m3u8?pw=0")
	for p, u := range segURIs(t, b0again) {
		if old, ok := before[p]; ok && old != u {
			t.Fatalf("pathway g0 changed %s: %s → %s", p, old, u)
		}
	}
	_, h, b1 := e.get(t, "/hls/live/cam/v0/index.m3u8?pw=1")
	if h.Get("X-Portier-Pathway") != "g1" {
		t.Fatalf("pathway header %q", h.Get("X-Portier-Pathway"))
	}
	moved := 0
	for p, u := range segURIs(t, b1) {
		if strings.Contains(u, dead) {
			t.Fatalf("g1 lists %s on the dead edge", u)
		}
		if before[p] != u {
			moved++
			if !strings.Contains(before[p], dead) {
				t.Fatalf("g1 moved %s off a live edge: %s → %s", p, before[p], u)
			}
		}
	}
	if moved == 0 {
		t.Fatal("no segment moved off the dead edge")
	}
	_, _, st := e.get(t, "/hls/live/cam/steering.json?base=0")
	want := `{"VERSION":1,"TTL":1,"PATHWAY-PRIORITY":["g1","g0"],"PATHWAY-CLONES":[{"BASE-ID":"g0","ID":"g1","URI-REPLACEMENT":{"PARAMS":{"pw":"1"}}}]}` + "\n"
	if st+"\n" != want && st != want {
		t.Fatalf("steering: %s\nwant %s", st, want)
	}
	// No viewer request without a pathway is served from a dead edge.
	_, _, bNew := e.get(t, "/hls/live/cam/v0/index.m3u8")
	if strings.Contains(bNew, dead) {
		t.Fatal("a playlist without pw lists the dead edge")
	}
}

// TestPlayTokens: a stream that is not public needs a valid token, which
// the master carries to the URIs it lists.
func TestPlayTokens(t *testing.T) {
	e := newEnv(t, DepthRendition, false)
	for _, c := range []struct {
		q    string
		code int
		msg  string
	}{
		{"", 403, "needs a play token"},
		{"?token=7.9999999999.AAAA", 403, "does not match"},
		{"?token=" + IssueToken(hlssign.Secret("tok"), 8, e.clk.now().Add(time.Hour)), 403, "does not match"},
		{"?token=" + IssueToken(hlssign.Secret("tok"), 7, e.clk.now().Add(-time.Second)), 403, "expired"},
	} {
		if code, _, body := e.get(t, "/hls/live/cam/master.m3u8"+c.q); code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%q: %d %s", c.q, code, body)
		}
	}
	tok := e.rw.PlayToken(7, time.Hour)
	code, _, body := e.get(t, "/hls/live/cam/master.m3u8?token="+tok)
	if code != 200 || strings.Count(body, "token="+url.QueryEscape(tok)) != 3 {
		t.Fatalf("with a token: %d\n%s", code, body)
	}
	if code, _, _ := e.get(t, "/hls/live/cam/v0/index.m3u8?pw=0&token="+tok); code != 200 {
		t.Fatalf("media with the token: %d", code)
	}
	if code, _, _ := e.get(t, "/hls/live/cam/v0/index.m3u8?pw=0"); code != 403 {
		t.Fatalf("media without the token: %d", code)
	}
}

// TestAppS: /hls/s/… is the origin's; the app "s" is reached as /hls/~s/.
func TestAppS(t *testing.T) {
	e := newEnv(t, DepthRendition, true)
	if code, _, body := e.get(t, "/hls/s/cam/master.m3u8"); code != 404 || !strings.Contains(body, "/hls/~s/NAME/master.m3u8") {
		t.Fatalf("/hls/s/cam: %d %s", code, body)
	}
	if ViewerPath("s", "cam") != "/hls/~s/cam/master.m3u8" || ViewerPath("live", "cam") != "/hls/live/cam/master.m3u8" {
		t.Fatalf("ViewerPath: %s %s", ViewerPath("s", "cam"), ViewerPath("live", "cam"))
	}
	code, _, body := e.get(t, "/hls/~s/cam/master.m3u8")
	if code != 200 || !strings.Contains(body, "/hls/~s/cam/v0/index.m3u8") {
		t.Fatalf("/hls/~s/cam: %d %s", code, body)
	}
	if code, _, body := e.get(t, "/hls/~s/cam/v0/index.m3u8"); code != 200 || !strings.Contains(body, "/hls/s/8/v0/seg_") {
		t.Fatalf("/hls/~s/cam media: %d %s", code, body)
	}
	if code, _, _ := e.get(t, "/hls/live/nope/master.m3u8"); code != 404 {
		t.Fatalf("unknown stream: %d", code)
	}
}

// TestCORS: any origin by default; a configured list answers only its
// origins; preflights are answered.
func TestCORS(t *testing.T) {
	e := newEnv(t, DepthRendition, true)
	_, h, _ := e.get(t, "/hls/live/cam/master.m3u8", "Origin", "https://player.example")
	if h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("default: %v", h)
	}
	e.rw.cors = httpcors.New([]string{"https://a.example"}, "Content-Length", "Age", "X-Portier-Pathway")
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/hls/live/cam/master.m3u8", nil)
	req.Header.Set("Origin", "https://a.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "range")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://a.example" || resp.Header.Get("Access-Control-Allow-Headers") != "range" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if code, h, _ := e.get(t, "/hls/live/cam/master.m3u8", "Origin", "https://b.example"); code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: %d %v", code, h)
	}
}

// TestNoEdge: without live edges the rewriter says so.
func TestNoEdge(t *testing.T) {
	e := newEnv(t, DepthRendition, true)
	e.clk.add(10 * time.Second) // every heartbeat is old now
	if err := e.rw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _, body := e.get(t, "/hls/live/cam/v0/index.m3u8"); code != 503 || !strings.Contains(body, "no live CDN edge") {
		t.Fatalf("%d %s", code, body)
	}
}

// TestProbedEdgeLeavesFast: an edge whose /healthz refuses connections
// leaves the ring after two refreshes (≤ 2 × RefreshEvery, well inside
// one heartbeat interval) although its heartbeat is still fresh; a slow
// probe (timeout) does not count against an edge.
func TestProbedEdgeLeavesFast(t *testing.T) {
	var srvs []*httptest.Server
	dir := &fakeDir{streams: map[string]Stream{}}
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i == 2 {
				time.Sleep(300 * time.Millisecond) // slower than the probe's timeout
			}
		}))
		t.Cleanup(s.Close)
		srvs = append(srvs, s)
		dir.edges = append(dir.edges, Edge{Name: fmt.Sprintf("edge-%d", i), BaseURL: s.URL, CapacityMbps: 1000, LastHeartbeat: time.Now().Add(time.Hour)})
	}
	rw, err := New(Params{Directory: dir, Origin: &fakeOrigin{n: 3}, Secret: "s", RefreshEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rw.Refresh(ctx); err != nil || len(rw.edges.get().edges) != 3 {
		t.Fatalf("3 live edges: %v %+v", err, rw.edges.get())
	}
	srvs[0].Close() // killed: connections refused
	_ = rw.Refresh(ctx)
	if n := len(rw.edges.get().edges); n != 3 {
		t.Fatalf("after one refused probe %d edges, want 3 (one failure is not enough)", n)
	}
	_ = rw.Refresh(ctx)
	set := rw.edges.get()
	if _, in := set.live["edge-0"]; in || len(set.edges) != 2 || set.gen != 1 {
		t.Fatalf("after two refused probes: %+v, want edge-0 out and generation 1", set.live)
	}
}

// TestDirectoryOutageKeepsEdges: after the directory (the database) was
// down longer than the alive window, every edge's heartbeat is stale when
// it answers again; the edges stay on the ring (no new pathway) until they
// have had time to heartbeat, and only one that did not leaves then.
func TestDirectoryOutageKeepsEdges(t *testing.T) {
	e := newEnv(t, DepthSegment, true)
	ctx := context.Background()
	set := func() (int, int64) { s := e.rw.edges.get(); return len(s.edges), s.gen }
	e.dir.setDown(true)
	e.clk.add(time.Second)
	if err := e.rw.Refresh(ctx); err == nil {
		t.Fatal("refresh with the directory down: no error")
	}
	e.clk.add(10 * time.Second)
	e.dir.setDown(false)
	if err := e.rw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n, gen := set(); n != 3 || gen != 0 {
		t.Fatalf("just after the outage: %d edges, generation %d; want 3 and 0 (stale heartbeats prove nothing yet)", n, gen)
	}
	e.clk.add(time.Second)
	e.dir.heartbeat(e.clk.now(), "edge-0", "edge-1") // edge-2 died meanwhile
	if err := e.rw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n, gen := set(); n != 3 || gen != 0 {
		t.Fatalf("1 s after the outage: %d edges, generation %d; want 3 and 0", n, gen)
	}
	e.clk.add(2 * time.Second)
	e.dir.heartbeat(e.clk.now(), "edge-0", "edge-1")
	if err := e.rw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n, gen := set(); n != 2 || gen != 1 {
		t.Fatalf("3 s after the outage: %d edges, generation %d; want 2 (edge-2 left) and 1", n, gen)
	}
}

// TestLateHeartbeatKeepsAnsweringEdge: an edge of the ring whose heartbeat
// is late by less than another alive window (its control-plane replica
// died and it is moving to the other) stays while its /healthz answers;
// a late edge that does not answer (hung) leaves as before, and so does any
// edge once its heartbeat is two alive windows old.
func TestLateHeartbeatKeepsAnsweringEdge(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	dir := &fakeDir{streams: map[string]Stream{}}
	hung := make(chan struct{})
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i == 2 {
				<-hung // accepts, never answers (SIGSTOPped)
			}
		}))
		t.Cleanup(s.Close)
		dir.edges = append(dir.edges, Edge{Name: fmt.Sprintf("edge-%d", i), BaseURL: s.URL, CapacityMbps: 1000, LastHeartbeat: clk.now()})
	}
	t.Cleanup(func() { close(hung) }) // before the servers' Close, which waits for the hung handler
	rw, err := New(Params{Directory: dir, Origin: &fakeOrigin{n: 3}, Secret: "s", RefreshEvery: 100 * time.Millisecond, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rw.Refresh(ctx); err != nil || len(rw.edges.get().edges) != 3 {
		t.Fatalf("3 live edges: %v %+v", err, rw.edges.get())
	}
	// 2 s without a heartbeat (alive window 1.5 s): the answering edges
	// stay, the hung one leaves.
	clk.add(2 * time.Second)
	if err := rw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	set := rw.edges.get()
	if _, in := set.live["edge-2"]; in || len(set.edges) != 2 || set.gen != 1 {
		t.Fatalf("heartbeats 2 s late: %v, generation %d; want edge-0 and edge-1 (they answer), not the hung edge-2", set.live, set.gen)
	}
	// The replica took over: fresh heartbeats again, nothing changes.
	dir.heartbeat(clk.now(), "edge-0", "edge-1")
	if err := rw.Refresh(ctx); err != nil || len(rw.edges.get().edges) != 2 || rw.edges.get().gen != 1 {
		t.Fatalf("after the heartbeats resumed: %v %+v", err, rw.edges.get().live)
	}
	// 3.5 s without a heartbeat: two alive windows gone, answering or not.
	clk.add(3500 * time.Millisecond)
	if err := rw.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rw.edges.get().edges); n != 0 {
		t.Fatalf("heartbeats 3.5 s old: %d edges on the ring, want none", n)
	}
}
