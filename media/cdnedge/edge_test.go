package cdnedge

import (
	"bytes"
	"context"
	"fmt"
	"github.com/portier/portier/internal/testutil"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
)

const testToken = "cluster-token-for-tests"

// fakeOrigin serves objects like an HLS origin (cluster token required,
// Content-Length, ETag) and counts GETs per path. hold, when set for a
// path, makes the origin send the first part of that object and wait on
// the channel before the rest.
type fakeOrigin struct {
	srv     *httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	status  map[string]int // answer this status instead (once, then delete)
	hold    map[string]chan struct{}
	gets    map[string]int
	total   atomic.Int64
}

func newFakeOrigin(t *testing.T) *fakeOrigin {
	o := &fakeOrigin{objects: map[string][]byte{}, status: map[string]int{}, hold: map[string]chan struct{}{}, gets: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *fakeOrigin) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.RawQuery != "" {
		http.Error(w, "the edge forwarded a query", http.StatusBadRequest)
		return
	}
	o.total.Add(1)
	o.mu.Lock()
	o.gets[r.URL.Path]++
	body, ok := o.objects[r.URL.Path]
	st, forced := o.status[r.URL.Path]
	delete(o.status, r.URL.Path)
	hold := o.hold[r.URL.Path]
	o.mu.Unlock()
	switch {
	case forced:
		http.Error(w, "forced", st)
		return
	case !ok:
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%08x"`, crc32.ChecksumIEEE(body))
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if strings.HasSuffix(r.URL.Path, ".m3u8") {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Cache-Control", "max-age=1")
	} else {
		w.Header().Set("Content-Type", "video/mp2t")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	w.Header().Set("Last-Modified", time.Unix(1_700_000_000, 0).UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if hold == nil {
		_, _ = w.Write(body)
		return
	}
	half := len(body) / 4
	_, _ = w.Write(body[:half])
	w.(http.Flusher).Flush()
	select {
	case <-hold:
	case <-r.Context().Done():
		return
	}
	_, _ = w.Write(body[half:])
}

func (o *fakeOrigin) put(path string, body []byte) {
	o.mu.Lock()
	o.objects[path] = body
	o.mu.Unlock()
}

func (o *fakeOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[path]
}

// clock is a settable test clock.
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

type testEdge struct {
	*Edge
	url   string
	clock *clock
}

func newTestEdge(t *testing.T, origin *fakeOrigin, mod func(*Params)) *testEdge {
	t.Helper()
	c := &clock{t: time.Now()}
	p := Params{Origins: []string{origin.srv.URL}, ClusterToken: testToken, Now: c.now}
	if mod != nil {
		mod(&p)
	}
	e, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.HTTPHandler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	return &testEdge{Edge: e, url: srv.URL, clock: c}
}

// signed is the edge URL of path with a valid signature (plus a CMCD
// parameter and a viewer token that must not split the cache).
func (te *testEdge) signed(path string, extra string) string {
	prefix, _ := hlssign.PrefixOf(path)
	q := hlssign.Sign(hlssign.Secret(testToken), prefix, te.clock.now().Add(time.Hour))
	return te.url + path + "?" + q.Encode() + extra
}

func segment(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestCoalescingStreams: N viewers asking at once for an object the
// origin is still sending cause one origin fetch, and every viewer gets
// the first bytes while the origin still holds back the rest.
func TestCoalescingStreams(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/100.ts"
	body := segment(1<<20, 3)
	o.put(path, body)
	release := make(chan struct{})
	o.hold[path] = release
	te := newTestEdge(t, o, nil)

	const viewers = 50
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	firstBytes := make(chan error, viewers)
	results := make(chan error, viewers)
	for i := range viewers {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, te.signed(path, fmt.Sprintf("&CMCD=sid%%3D%d&token=v%d", i, i)), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				firstBytes <- err
				results <- err
				return
			}
			defer resp.Body.Close()
			head := make([]byte, 64<<10)
			_, err = io.ReadFull(resp.Body, head)
			firstBytes <- err
			rest, err := io.ReadAll(resp.Body)
			if err == nil && !bytes.Equal(append(head, rest...), body) {
				err = fmt.Errorf("viewer %d: body differs (%d bytes)", i, len(head)+len(rest))
			}
			results <- err
		}()
	}
	// Every viewer reads 64 KiB while the origin has sent only a quarter
	// of the object and waits for release.
	for range viewers {
		select {
		case err := <-firstBytes:
			if err != nil {
				t.Fatalf("first bytes: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("viewers got no bytes before the origin finished the object: the edge does not stream to waiters")
		}
	}
	close(release)
	for range viewers {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if n := o.count(path); n != 1 {
		t.Fatalf("origin fetches for %d concurrent viewers: %d, want 1", viewers, n)
	}
	resp, _ := get(t, te.signed(path, ""))
	if resp.Header.Get("X-Cache") != resultHit || o.count(path) != 1 {
		t.Fatalf("after the fill: X-Cache %q, origin fetches %d; want a hit and 1", resp.Header.Get("X-Cache"), o.count(path))
	}
}

// TestViewerLeavingDoesNotCutOthers: the viewer that started a fill goes
// away; the others still get the whole object from that one fetch.
func TestViewerLeavingDoesNotCutOthers(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/101.ts"
	body := segment(256<<10, 9)
	o.put(path, body)
	release := make(chan struct{})
	o.hold[path] = release
	te := newTestEdge(t, o, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, te.signed(path, ""), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	done := make(chan []byte)
	go func() { _, b := get(t, te.signed(path, "")); done <- b }()
	close(release)
	select {
	case b := <-done:
		if !bytes.Equal(b, body) {
			t.Fatalf("second viewer got %d bytes, want the object", len(b))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second viewer never got the object")
	}
	if n := o.count(path); n != 1 {
		t.Fatalf("origin fetches: %d, want 1", n)
	}
}

func TestRange(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/102.ts"
	body := segment(300_000, 1)
	o.put(path, body)
	release := make(chan struct{})
	o.hold[path] = release
	te := newTestEdge(t, o, nil)
	// A Range inside the part not yet sent waits for it; one inside the
	// sent part does not need the rest.
	early := make(chan []byte, 1)
	go func() {
		resp, b := get(t, te.signed(path, ""), "Range", "bytes=100-199")
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("early range: %s", resp.Status)
		}
		early <- b
	}()
	select {
	case b := <-early:
		if !bytes.Equal(b, body[100:200]) {
			t.Fatalf("early range body differs")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a range within the bytes already received waited for the whole object")
	}
	close(release)
	for _, c := range []struct {
		rng        string
		status     int
		start, end int
	}{
		{"bytes=200000-", http.StatusPartialContent, 200000, len(body)},
		{"bytes=-10", http.StatusPartialContent, len(body) - 10, len(body)},
		{"bytes=0-0", http.StatusPartialContent, 0, 1},
	} {
		resp, b := get(t, te.signed(path, ""), "Range", c.rng)
		if resp.StatusCode != c.status || !bytes.Equal(b, body[c.start:c.end]) {
			t.Errorf("Range %s: %s, %d bytes", c.rng, resp.Status, len(b))
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, len(body)); resp.Header.Get("Content-Range") != want {
			t.Errorf("Range %s: Content-Range %q, want %q", c.rng, resp.Header.Get("Content-Range"), want)
		}
	}
	resp, _ := get(t, te.signed(path, ""), "Range", "bytes=400000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %s", resp.Status)
	}
	if n := o.count(path); n != 1 {
		t.Fatalf("origin fetches: %d, want 1", n)
	}
}

func TestConditional(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/103.ts"
	o.put(path, segment(1000, 2))
	te := newTestEdge(t, o, nil)
	resp, _ := get(t, te.signed(path, ""))
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("ETag %q Last-Modified %q", etag, lm)
	}
	if resp, b := get(t, te.signed(path, ""), "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}
	if resp, _ := get(t, te.signed(path, ""), "If-Modified-Since", lm); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-Modified-Since: %s", resp.Status)
	}
	if resp, _ := get(t, te.signed(path, ""), "If-None-Match", `"other"`); resp.StatusCode != http.StatusOK {
		t.Fatalf("other ETag: %s", resp.Status)
	}
}

func TestSignature(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/104.ts"
	o.put(path, segment(1000, 2))
	te := newTestEdge(t, o, nil)
	secret := hlssign.Secret(testToken)
	expired := hlssign.Sign(secret, "/hls/s/7/", te.clock.now().Add(-time.Second))
	other := hlssign.Sign(secret, "/hls/s/8/", te.clock.now().Add(time.Hour))
	wrongKey := hlssign.Sign(hlssign.Secret("another"), "/hls/s/7/", te.clock.now().Add(time.Hour))
	for _, c := range []struct{ name, url, want string }{
		{"unsigned", te.url + path, "not signed"},
		{"expired", te.url + path + "?" + expired.Encode(), "expired"},
		{"other stream", te.url + path + "?" + other.Encode(), "does not match"},
		{"other secret", te.url + path + "?" + wrongKey.Encode(), "does not match"},
		{"tampered expiry", te.url + path + "?exp=9999999999&sig=" + other.Get("sig"), "does not match"},
	} {
		resp, b := get(t, c.url)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), c.want) || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %s %s", c.name, resp.Status, b)
		}
	}
	if n := o.total.Load(); n != 0 {
		t.Fatalf("refused requests reached the origin %d times", n)
	}
	for _, p := range []string{"/hls/s/7/../8/x.ts", "/hls/s/x/720p/1.ts", "/hls/s/7/720p/1.txt"} {
		req, _ := http.NewRequest(http.MethodGet, te.url+p, nil)
		req.URL.Path = p // keep the ".."
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", p, resp.Status)
		}
	}
}

// TestOriginErrorsNotCached: a failed fill is not kept; the next request
// retries; a 404 stays a 404.
func TestOriginErrorsNotCached(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/105.ts"
	body := segment(5000, 4)
	o.put(path, body)
	o.status[path] = http.StatusInternalServerError
	te := newTestEdge(t, o, nil)
	if resp, b := get(t, te.signed(path, "")); resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "origin") {
		t.Fatalf("origin 500: %s %s", resp.Status, b)
	}
	if resp, b := get(t, te.signed(path, "")); resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
		t.Fatalf("retry after a failed fill: %s", resp.Status)
	}
	if n := o.count(path); n != 2 {
		t.Fatalf("origin fetches: %d, want 2", n)
	}
	const missing = "/hls/s/7/720p/999.ts"
	for range 2 {
		if resp, _ := get(t, te.signed(missing, "")); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("missing: %s", resp.Status)
		}
	}
	if n := o.count(missing); n != 2 {
		t.Fatalf("a 404 was cached: %d origin fetches, want 2", n)
	}
}

// TestOriginFailover: the first origin is down; the second serves.
func TestOriginFailover(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/106.ts"
	o.put(path, segment(1000, 5))
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	te := newTestEdge(t, o, func(p *Params) { p.Origins = []string{deadURL, o.srv.URL} })
	if resp, _ := get(t, te.signed(path, "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("with one origin down: %s", resp.Status)
	}
	if err := te.Ready(context.Background()); err != nil {
		t.Fatalf("ready with one origin up: %v", err)
	}
}

// TestEvictionBound: the cache never holds more than its bound, and the
// least recently used objects go first.
func TestEvictionBound(t *testing.T) {
	o := newFakeOrigin(t)
	const size, limit = 100_000, 350_000
	te := newTestEdge(t, o, func(p *Params) { p.CacheBytes, p.MaxObjectBytes = limit, 150_000 })
	path := func(i int) string { return fmt.Sprintf("/hls/s/7/720p/%d.ts", 200+i) }
	for i := range 10 {
		o.put(path(i), segment(size, byte(i)))
	}
	for i := range 10 {
		get(t, te.signed(path(i), ""))
		get(t, te.signed(path(0), "")) // keep 0 recently used
		if used, _, _ := te.cache.stats(); used > limit {
			t.Fatalf("cache holds %d bytes, bound %d", used, limit)
		}
	}
	used, objects, evicted := te.cache.stats()
	if objects != 3 || evicted != 7 || used != 3*size {
		t.Fatalf("cache: %d bytes, %d objects, %d evicted; want 3 objects, 7 evicted", used, objects, evicted)
	}
	if n := o.count(path(0)); n != 1 {
		t.Fatalf("the most recently used object was evicted (%d fetches)", n)
	}
	get(t, te.signed(path(1), ""))
	if n := o.count(path(1)); n != 2 {
		t.Fatalf("an evicted object was served without a fetch (%d fetches)", n)
	}
	// An object above MaxObjectBytes is served but not kept.
	big := "/hls/s/7/720p/big.ts"
	o.put(big, segment(limit, 1))
	for range 2 {
		if resp, b := get(t, te.signed(big, "")); resp.StatusCode != http.StatusOK || len(b) != limit {
			t.Fatalf("big object: %s %d", resp.Status, len(b))
		}
	}
	if used, _, _ := te.cache.stats(); used > limit {
		t.Fatalf("cache holds %d bytes, bound %d", used, limit)
	}
}

// TestPlaylistFreshness: a playlist is fresh for half its target
// duration, then served stale while one conditional refresh runs.
func TestPlaylistFreshness(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/index.m3u8"
	v1 := []byte("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:4,\n1.ts\n")
	v2 := []byte("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:4,\n2.ts\n")
	o.put(path, v1)
	te := newTestEdge(t, o, nil)
	if _, b := get(t, te.signed(path, "")); !bytes.Equal(b, v1) {
		t.Fatal("first playlist")
	}
	te.clock.add(900 * time.Millisecond) // origin max-age=1 caps half of 4 s
	if resp, _ := get(t, te.signed(path, "")); resp.Header.Get("X-Cache") != resultHit {
		t.Fatalf("within its freshness: %s", resp.Header.Get("X-Cache"))
	}
	o.put(path, v2)
	te.clock.add(200 * time.Millisecond)
	resp, b := get(t, te.signed(path, ""))
	if resp.Header.Get("X-Cache") != resultStale || !bytes.Equal(b, v1) {
		t.Fatalf("expired: %s %q", resp.Header.Get("X-Cache"), b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, b := get(t, te.signed(path, ""))
		if bytes.Equal(b, v2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh never replaced the stale playlist")
		}
		time.Sleep(10 * time.Millisecond) // poll, bounded by the deadline
	}
	if n := o.count(path); n != 2 {
		t.Fatalf("origin playlist fetches: %d, want 2", n)
	}
	te.clock.add(time.Hour) // past the stale window: fetched anew
	if resp, _ := get(t, te.signed(path, "")); resp.Header.Get("X-Cache") != resultMiss {
		t.Fatalf("long expired: %s", resp.Header.Get("X-Cache"))
	}
}

func TestPlaylistTTL(t *testing.T) {
	for _, c := range []struct {
		body, cc string
		want     time.Duration
	}{
		{"#EXTM3U\n#EXT-X-TARGETDURATION:2\n", "max-age=1", time.Second},
		{"#EXTM3U\n#EXT-X-TARGETDURATION:1\n", "max-age=1", 500 * time.Millisecond},
		{"#EXTM3U\n#EXT-X-TARGETDURATION:6\n", "max-age=3", 3 * time.Second},
		{"#EXTM3U\n#EXT-X-TARGETDURATION:20\n", "", maxPlaylistTTL},
		{"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8\n", "max-age=1", time.Second},
	} {
		if got := playlistTTL([]byte(c.body), c.cc); got != c.want {
			t.Errorf("%q %q: %v, want %v", c.body, c.cc, got, c.want)
		}
	}
}

func TestCORS(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/107.ts"
	o.put(path, segment(100, 1))
	te := newTestEdge(t, o, func(p *Params) { p.AllowOrigins = []string{"https://player.example"} })
	req, _ := http.NewRequest(http.MethodOptions, te.url+path, nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "range")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://player.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") || resp.Header.Get("Access-Control-Allow-Headers") != "range" {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
	resp, _ = get(t, te.signed(path, ""), "Origin", "https://player.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://player.example" {
		t.Fatalf("GET: %v", resp.Header)
	}
	resp, _ = get(t, te.signed(path, ""), "Origin", "https://evil.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin was allowed: %v", resp.Header)
	}
	anyEdge := newTestEdge(t, o, nil)
	resp, _ = get(t, anyEdge.signed(path, ""), "Origin", "https://anyone.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("default: %v", resp.Header)
	}
}

func TestLoadAndMetrics(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/108.ts"
	o.put(path, segment(10_000, 1))
	te := newTestEdge(t, o, nil)
	te.Load()
	for range 4 {
		get(t, te.signed(path, ""))
	}
	// A handler counts its bytes just after the viewer has them all.
	for deadline := time.Now().Add(5 * time.Second); te.m.active.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // poll, bounded by the deadline
	}
	te.clock.add(time.Second)
	l := te.Load()
	if l.HitRatio != 0.75 || l.BitrateOut != 4*10_000*8 || l.CacheBytes != 10_000 || l.CacheCapacityBytes != DefaultCacheBytes {
		t.Fatalf("load: %+v", l)
	}
	_, b := get(t, te.url+"/metrics")
	for _, want := range []string{`portier_cdn_edge_requests_total{result="hit"} 3`, `portier_cdn_edge_requests_total{result="miss"} 1`,
		"portier_cdn_edge_origin_fetch_seconds_bucket", "portier_cdn_edge_bytes_out_total 40000", "portier_cdn_edge_cache_bytes 10000"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, _ := get(t, te.url+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s", resp.Status)
	}
}

// TestBrokenFill: the origin dies in the middle of an object. Viewers see
// a broken body (never a short one that looks whole), and the next
// request fetches the object again.
func TestBrokenFill(t *testing.T) {
	body := segment(200_000, 6)
	var calls atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if calls.Add(1) == 1 {
			_, _ = w.Write(body[:50_000])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(origin.Close)
	c := &clock{t: time.Now()}
	e, err := New(Params{Origins: []string{origin.URL}, ClusterToken: testToken, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.HTTPHandler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	te := &testEdge{Edge: e, url: srv.URL, clock: c}
	const path = "/hls/s/7/720p/300.ts"
	resp, err := http.Get(te.signed(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a fill cut by the origin reached the viewer as a complete %d-byte body", len(b))
	}
	if resp, b := get(t, te.signed(path, "")); resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Fatalf("retry: %s, %d bytes", resp.Status, len(b))
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("origin calls: %d, want 2", n)
	}
}

// TestPlaylistRevalidated: an unchanged playlist is revalidated with its
// ETag (304) and stays the cached copy.
func TestPlaylistRevalidated(t *testing.T) {
	o := newFakeOrigin(t)
	const path = "/hls/s/7/720p/index.m3u8"
	o.put(path, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n1.ts\n"))
	te := newTestEdge(t, o, nil)
	get(t, te.signed(path, ""))
	te.clock.add(1500 * time.Millisecond)
	if resp, _ := get(t, te.signed(path, "")); resp.Header.Get("X-Cache") != resultStale {
		t.Fatalf("expired: %s", resp.Header.Get("X-Cache"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if resp, _ := get(t, te.signed(path, "")); resp.Header.Get("X-Cache") == resultHit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 304 did not make the cached playlist fresh again")
		}
		time.Sleep(10 * time.Millisecond) // poll, bounded by the deadline
	}
	if n := o.count(path); n != 2 {
		t.Fatalf("origin fetches: %d, want 2 (the fill and one revalidation)", n)
	}
}

// TestDiskTier: segments the memory tier evicted are served from the
// disk tier (Range included) without an origin fetch; the disk tier keeps
// its own bound.
func TestDiskTier(t *testing.T) {
	o := newFakeOrigin(t)
	dir := t.TempDir()
	const size = 100_000
	te := newTestEdge(t, o, func(p *Params) {
		p.CacheBytes, p.MaxObjectBytes, p.DiskDir, p.DiskBytes = 150_000, 150_000, dir, 350_000
	})
	path := func(i int) string { return fmt.Sprintf("/hls/s/7/720p/d%d.ts", i) }
	for i := range 6 {
		o.put(path(i), segment(size, byte(i)))
		get(t, te.signed(path(i), ""))
	}
	if used, n := te.disk.stats(); used > 350_000 || n != 3 {
		t.Fatalf("disk tier: %d bytes in %d files, want 3 files within 350000", used, n)
	}
	// The fill that spilled the last segment removes the files it evicted
	// after it indexed the new one, and may still be at it.
	testutil.Eventually(t, 5*time.Second, "3 files on disk", func() bool {
		files, _ := os.ReadDir(dir)
		return len(files) == 3
	})
	resp, b := get(t, te.signed(path(4), ""))
	if resp.Header.Get("X-Cache") != resultDiskHit || !bytes.Equal(b, segment(size, 4)) || o.count(path(4)) != 1 {
		t.Fatalf("evicted from memory: X-Cache %q, %d bytes, %d origin fetches", resp.Header.Get("X-Cache"), len(b), o.count(path(4)))
	}
	resp, b = get(t, te.signed(path(3), ""), "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, segment(size, 3)[10:20]) || resp.Header.Get("ETag") == "" {
		t.Fatalf("Range from disk: %s %v", resp.Status, resp.Header)
	}
	if resp, _ := get(t, te.signed(path(0), "")); resp.Header.Get("X-Cache") != resultMiss || o.count(path(0)) != 2 {
		t.Fatalf("evicted from both tiers: X-Cache %q, %d fetches", resp.Header.Get("X-Cache"), o.count(path(0)))
	}
	if l := te.Load(); l.DiskCapacityBytes != 350_000 || l.DiskObjects != 3 {
		t.Fatalf("load: %+v", l)
	}
}
