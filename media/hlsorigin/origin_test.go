package hlsorigin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/tests/peers"
)

const token = "cluster-secret"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type env struct {
	t    *testing.T
	dir  string
	o    *Origin
	srv  *httptest.Server
	clk  *clock
	opts Params
}

// start runs an origin on dir (a fresh one when empty) at 127.0.0.1:0.
func start(t *testing.T, dir string, p Params) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if p.Backend == nil {
		b, err := NewFSBackend(dir)
		if err != nil {
			t.Fatal(err)
		}
		p.Backend = b
	}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.ClusterToken, p.Now = token, clk.Now
	p.SweepInterval = time.Hour // tests call Sweep themselves
	if testing.Verbose() {
		p.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		p.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.HTTPHandler())
	e := &env{t: t, dir: dir, o: o, srv: srv, clk: clk, opts: p}
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	e.srv.Close()
	_ = e.o.Close()
}

func cred(stream, task, epoch int64) string {
	return hlscred.Sign(token, hlscred.Cred{StreamID: stream, TaskID: task, Epoch: epoch})
}

// do sends one request and returns the status and body.
func (e *env) do(method, path, auth string, body io.Reader, hdr ...string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) put(path, auth, body string) (int, string) {
	e.t.Helper()
	st, _, b := e.do(http.MethodPut, path, auth, strings.NewReader(body))
	return st, b
}

func (e *env) mustPut(path, auth, body string) {
	e.t.Helper()
	if st, b := e.put(path, auth, body); st != http.StatusCreated {
		e.t.Fatalf("PUT %s = %d %s, want 201", path, st, b)
	}
}

func mediaPlaylist(target int, seq int, segs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", target, seq)
	for _, s := range segs {
		fmt.Fprintf(&b, "#EXTINF:%d.000,\n%s\n", target, s)
	}
	return b.String()
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
		key  string
	}{
		{"/hls/s/1/master.m3u8", true, "s/1/master.m3u8"},
		{"/hls/s/12/v0/index.m3u8", true, "s/12/v0/index.m3u8"},
		{"/hls/s/12/v0/seg_1.ts", true, "s/12/v0/seg_1.ts"},
		{"/hls/s/12/720p-a_b/init.mp4", true, "s/12/720p-a_b/init.mp4"},
		{"/hls/s/12/v0/p.1.m4s", true, "s/12/v0/p.1.m4s"},
		{"/hls/s/0/master.m3u8", false, ""},
		{"/hls/s/01/master.m3u8", false, ""},
		{"/hls/s/1/../2/master.m3u8", false, ""},
		{"/hls/s/1/v0/../../2/master.m3u8", false, ""},
		{"/hls/s/1/../master.m3u8", false, ""},
		{"/hls/s/1/v0/..ts", false, ""},
		{"/hls/s/1/v0/.tmp-1.ts", false, ""},
		{"/hls/s/1/v0/seg.txt", false, ""},
		{"/hls/s/1/v0/other.m3u8", false, ""},
		{"/hls/s/1/index.m3u8", false, ""},
		{"/hls/s/1/seg.ts", false, ""},
		{"/hls/s/1/v0/x/seg.ts", false, ""},
		{"/hls/s/1/_v/seg.ts", false, ""},
		{"/hls/s/1/v0/seg 1.ts", false, ""},
		{"/hls/s/1/v0/", false, ""},
		{"/hls/s/1//seg.ts", false, ""},
		{"/hls/s/abc/master.m3u8", false, ""},
		{"/hls/x/1/master.m3u8", false, ""},
	} {
		o, ok := parsePath(tc.path)
		if ok != tc.ok || (ok && o.Key() != tc.key) {
			t.Errorf("parsePath(%q) = %+v, %v; want ok=%v key %q", tc.path, o, ok, tc.ok, tc.key)
		}
	}
}

func TestBadPathsAre400(t *testing.T) {
	e := start(t, "", Params{})
	for _, p := range []string{"/hls/s/1/../../etc/passwd", "/hls/s/1/%2e%2e/master.m3u8", "/hls/s/1/v0/seg.exe",
		"/hls/s/1/a/b/c.ts", "/hls/s/1/v0/seg%2f1.ts"} {
		if st, _, b := e.do(http.MethodPut, p, cred(1, 1, 1), strings.NewReader("x")); st != http.StatusBadRequest {
			t.Errorf("PUT %s = %d %s, want 400", p, st, b)
		}
		if st, _, _ := e.do(http.MethodGet, p, token, nil); st != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", p, st)
		}
	}
	// Nothing outside the storage dir was written.
	entries, _ := os.ReadDir(filepath.Dir(e.dir))
	for _, en := range entries {
		if en.Name() == "passwd" || en.Name() == "etc" {
			t.Errorf("traversal wrote %s", en.Name())
		}
	}
}

func TestWriteCredentials(t *testing.T) {
	e := start(t, "", Params{})
	for _, tc := range []struct {
		name string
		auth string
		want int
	}{
		{"none", "", http.StatusUnauthorized},
		{"cluster token is not a write credential", token, http.StatusUnauthorized},
		{"forged", "hls1.1.1.1.00000000000000000000000000000000", http.StatusUnauthorized},
		{"other token", hlscred.Sign("other", hlscred.Cred{StreamID: 1, TaskID: 1, Epoch: 1}), http.StatusUnauthorized},
		{"other stream", cred(2, 1, 1), http.StatusForbidden},
		{"valid", cred(1, 1, 1), http.StatusCreated},
	} {
		if st, b := e.put("/hls/s/1/v0/seg_1.ts", tc.auth, "data"); st != tc.want {
			t.Errorf("%s: PUT = %d %s, want %d", tc.name, st, b, tc.want)
		}
		if st, _, _ := e.do(http.MethodDelete, "/hls/s/1/v0/none.ts", tc.auth, nil); tc.want != http.StatusCreated && st != tc.want {
			t.Errorf("%s: DELETE = %d, want %d", tc.name, st, tc.want)
		}
	}
}

func TestFencing(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Params{})
	e.mustPut("/hls/s/1/v0/a.ts", cred(1, 5, 2), "a")
	for _, c := range []string{cred(1, 4, 9), cred(1, 5, 1)} {
		st, b := e.put("/hls/s/1/v0/b.ts", c, "b")
		if st != http.StatusConflict || !strings.Contains(b, "fenced") || !strings.Contains(b, "task 5 epoch 2") {
			t.Errorf("older writer: PUT = %d %s, want 409 naming task 5 epoch 2", st, b)
		}
	}
	if st, _, _ := e.do(http.MethodDelete, "/hls/s/1/v0/a.ts", cred(1, 5, 1), nil); st != http.StatusConflict {
		t.Errorf("older writer: DELETE = %d, want 409", st)
	}
	// Another stream is not fenced by stream 1's writer.
	e.mustPut("/hls/s/2/v0/a.ts", cred(2, 1, 1), "a")
	// A newer epoch, then a newer task, take over.
	e.mustPut("/hls/s/1/v0/c.ts", cred(1, 5, 3), "c")
	e.mustPut("/hls/s/1/v0/d.ts", cred(1, 6, 1), "d")
	if st, _ := e.put("/hls/s/1/v0/e.ts", cred(1, 5, 3), "e"); st != http.StatusConflict {
		t.Errorf("superseded epoch: PUT = %d, want 409", st)
	}
	// The fence survives a restart of the origin.
	e.stop()
	e2 := start(t, dir, Params{})
	if st, b := e2.put("/hls/s/1/v0/f.ts", cred(1, 5, 3), "f"); st != http.StatusConflict {
		t.Errorf("after restart: older writer PUT = %d %s, want 409", st, b)
	}
	e2.mustPut("/hls/s/1/v0/g.ts", cred(1, 6, 1), "g")
}

func TestPlaylistListingMissingSegment(t *testing.T) {
	e := start(t, "", Params{})
	c := cred(1, 1, 1)
	e.mustPut("/hls/s/1/v0/s1.ts", c, "one")
	st, b := e.put("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(2, 1, "s1.ts", "s2.ts"))
	if st != http.StatusConflict || !strings.Contains(b, `s2.ts`) {
		t.Fatalf("PUT playlist with a missing segment = %d %s, want 409 naming s2.ts", st, b)
	}
	if st, _, _ := e.do(http.MethodGet, "/hls/s/1/v0/index.m3u8", token, nil); st != http.StatusNotFound {
		t.Fatalf("refused playlist is visible: GET = %d", st)
	}
	for _, bad := range []string{"../v1/s1.ts", "/hls/s/2/v0/s1.ts", "http://elsewhere/x.ts", "../../2/v0/s1.ts"} {
		if st, b := e.put("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(2, 1, bad)); st != http.StatusConflict {
			t.Errorf("playlist listing %q = %d %s, want 409", bad, st, b)
		}
	}
	e.mustPut("/hls/s/1/v0/s2.ts", c, "two")
	e.mustPut("/hls/s/1/v1/s1.ts", c, "v1")
	e.mustPut("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(2, 1, "s1.ts", "s2.ts", "../v1/s1.ts", "/hls/s/1/v0/s1.ts"))
	// A master may list media playlists not uploaded yet.
	e.mustPut("/hls/s/1/master.m3u8", c, "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv9/index.m3u8\n")
	if st, _ := e.put("/hls/s/1/v0/index.m3u8", c, "not a playlist"); st != http.StatusBadRequest {
		t.Errorf("garbage playlist = %d, want 400", st)
	}
}

func TestReads(t *testing.T) { testReads(t, start(t, "", Params{})) }

// The same reads from an S3 bucket (a real versitygw): Range and
// conditional requests go through the S3 object's Seek.
func TestReadsS3(t *testing.T) {
	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	b, err := NewS3Backend(context.Background(), S3Params{Endpoint: g.Endpoint(), Bucket: "media", Prefix: "hls/", AccessKey: g.AccessKey, SecretKey: g.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	testReads(t, start(t, "", Params{Backend: b}))
}

func testReads(t *testing.T, e *env) {
	c := cred(1, 1, 1)
	seg := strings.Repeat("0123456789", 100)
	e.mustPut("/hls/s/1/v0/s1.ts", c, seg)
	e.mustPut("/hls/s/1/v0/init.mp4", c, "init")
	e.mustPut("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(6, 1, "s1.ts"))
	e.mustPut("/hls/s/1/master.m3u8", c, "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv0/index.m3u8\n")

	for _, auth := range []string{"", "wrong", c} {
		if st, _, _ := e.do(http.MethodGet, "/hls/s/1/v0/s1.ts", auth, nil); st != http.StatusUnauthorized {
			t.Errorf("GET with %q = %d, want 401", auth, st)
		}
	}
	st, h, b := e.do(http.MethodGet, "/hls/s/1/v0/s1.ts", token, nil)
	if st != 200 || b != seg || h.Get("Content-Type") != "video/mp2t" || h.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		h.Get("ETag") == "" || h.Get("Last-Modified") == "" || h.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET segment = %d %v", st, h)
	}
	etag := h.Get("ETag")
	if st, h, b := e.do(http.MethodGet, "/hls/s/1/v0/s1.ts", token, nil, "Range", "bytes=10-19"); st != http.StatusPartialContent || b != "0123456789" ||
		h.Get("Content-Range") != "bytes 10-19/1000" {
		t.Errorf("Range = %d %q %v", st, b, h)
	}
	if st, _, _ := e.do(http.MethodGet, "/hls/s/1/v0/s1.ts", token, nil, "If-None-Match", etag); st != http.StatusNotModified {
		t.Errorf("If-None-Match = %d, want 304", st)
	}
	if st, h, b := e.do(http.MethodHead, "/hls/s/1/v0/s1.ts", token, nil); st != 200 || b != "" || h.Get("Content-Length") != "1000" {
		t.Errorf("HEAD = %d %q %v", st, b, h)
	}
	if _, h, _ := e.do(http.MethodGet, "/hls/s/1/v0/init.mp4", token, nil); h.Get("Content-Type") != "video/mp4" {
		t.Errorf("init content type %q", h.Get("Content-Type"))
	}
	st, h, b = e.do(http.MethodGet, "/hls/s/1/v0/index.m3u8", token, nil)
	if st != 200 || !strings.Contains(b, "s1.ts") || h.Get("Content-Type") != "application/vnd.apple.mpegurl" || h.Get("Cache-Control") != "max-age=3" {
		t.Errorf("GET media playlist = %d %v", st, h)
	}
	if _, h, _ := e.do(http.MethodGet, "/hls/s/1/master.m3u8", token, nil); h.Get("Cache-Control") != "max-age=1" {
		t.Errorf("master Cache-Control %q", h.Get("Cache-Control"))
	}
	if st, _, _ := e.do(http.MethodGet, "/hls/s/1/v0/none.ts", token, nil); st != http.StatusNotFound {
		t.Errorf("missing = %d", st)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if st, _, b := e.do(http.MethodGet, p, "", nil); st != 200 || (p == "/metrics" && !strings.Contains(b, "portier_hls_origin_uploads_total")) {
			t.Errorf("GET %s = %d", p, st)
		}
	}
}

func TestPlaylistMaxAge(t *testing.T) {
	for target, want := range map[int]int{0: 1, 1: 1, 2: 1, 4: 2, 6: 3, 10: 5, 30: 5} {
		pl, _ := parsePlaylist([]byte(mediaPlaylist(target, 0)))
		if got := playlistMaxAge(pl); got != want {
			t.Errorf("target %d: max-age %d, want %d", target, got, want)
		}
	}
}

// chunked is a body of unknown length, so the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestSizeLimits(t *testing.T) {
	e := start(t, "", Params{MaxSegmentBytes: 100, StreamQuotaBytes: 250})
	c := cred(1, 1, 1)
	big := strings.Repeat("x", 101)
	if st, b := e.put("/hls/s/1/v0/big.ts", c, big); st != http.StatusRequestEntityTooLarge || !strings.Contains(b, "max-segment-bytes") {
		t.Errorf("large segment = %d %s", st, b)
	}
	if st, _, b := e.do(http.MethodPut, "/hls/s/1/v0/big.ts", c, chunked{strings.NewReader(big)}); st != http.StatusRequestEntityTooLarge {
		t.Errorf("large chunked segment = %d %s", st, b)
	}
	if st, _, _ := e.do(http.MethodGet, "/hls/s/1/v0/big.ts", token, nil); st != http.StatusNotFound {
		t.Errorf("refused segment stored: GET = %d", st)
	}
	// Chunked uploads within the limits are stored.
	if st, _, b := e.do(http.MethodPut, "/hls/s/1/v0/a.ts", c, chunked{strings.NewReader(strings.Repeat("a", 100))}); st != http.StatusCreated {
		t.Fatalf("chunked segment = %d %s", st, b)
	}
	e.mustPut("/hls/s/1/v0/b.ts", c, strings.Repeat("b", 100))
	if st, b := e.put("/hls/s/1/v0/c.ts", c, strings.Repeat("c", 60)); st != http.StatusRequestEntityTooLarge || !strings.Contains(b, "quota") {
		t.Errorf("over quota = %d %s", st, b)
	}
	if st, _, b := e.do(http.MethodPut, "/hls/s/1/v0/c.ts", c, chunked{strings.NewReader(strings.Repeat("c", 60))}); st != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked over quota = %d %s", st, b)
	}
	// A stored segment is never rewritten, not even by its own writer:
	// a CDN may already hold its bytes. Other streams have their own quota.
	if st, b := e.put("/hls/s/1/v0/b.ts", c, strings.Repeat("x", 100)); st != http.StatusConflict || !strings.Contains(b, "segment_exists") {
		t.Errorf("rewriting a stored segment = %d %s, want 409 segment_exists", st, b)
	}
	if st, _, body := e.do(http.MethodGet, "/hls/s/1/v0/b.ts", token, nil); st != http.StatusOK || body != strings.Repeat("b", 100) {
		t.Errorf("after a refused rewrite: GET = %d %.10q", st, body)
	}
	e.mustPut("/hls/s/2/v0/a.ts", cred(2, 1, 1), strings.Repeat("a", 100))
}

func TestRetention(t *testing.T) {
	e := start(t, "", Params{Retention: time.Minute})
	c := cred(1, 1, 1)
	get := func(p string) int { st, _, _ := e.do(http.MethodGet, p, token, nil); return st }
	for i := range 5 {
		e.mustPut(fmt.Sprintf("/hls/s/1/v0/s%d.ts", i), c, "seg")
	}
	e.mustPut("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(2, 0, "s0.ts", "s1.ts", "s2.ts"))
	e.clk.Add(time.Second)
	e.mustPut("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(2, 1, "s1.ts", "s2.ts", "s3.ts"))
	// s0 left the playlist now: it stays for 2 s (its duration) + 6 s (the playlist).
	// ffmpeg's delete_segments asks to delete it early: deferred to retention.
	if st, _, _ := e.do(http.MethodDelete, "/hls/s/1/v0/s0.ts", c, nil); st != http.StatusAccepted || get("/hls/s/1/v0/s0.ts") != 200 {
		t.Errorf("DELETE inside the window = %d (want 202, still readable)", st)
	}
	e.clk.Add(7 * time.Second)
	e.o.Sweep(context.Background())
	if get("/hls/s/1/v0/s0.ts") != 200 {
		t.Fatal("s0 deleted inside its window")
	}
	// s4 was never listed: its window counts from its upload (target + playlist = 8 s).
	e.clk.Add(1500 * time.Millisecond)
	e.o.Sweep(context.Background())
	for p, want := range map[string]int{"s0.ts": 404, "s4.ts": 404, "s1.ts": 200, "s2.ts": 200, "s3.ts": 200, "index.m3u8": 200} {
		if got := get("/hls/s/1/v0/" + p); got != want {
			t.Errorf("after the window: GET %s = %d, want %d", p, got, want)
		}
	}
	// A DELETE of a listed segment is refused.
	if st, _, _ := e.do(http.MethodDelete, "/hls/s/1/v0/s1.ts", c, nil); st != http.StatusConflict {
		t.Errorf("DELETE listed = %d, want 409", st)
	}
	// The whole stream goes Retention after its last write; its fence stays.
	e.mustPut("/hls/s/1/v0/s9.ts", cred(1, 2, 1), "x")
	e.clk.Add(59 * time.Second)
	e.o.Sweep(context.Background())
	if get("/hls/s/1/v0/index.m3u8") != 200 {
		t.Fatal("stream removed before --retention")
	}
	e.clk.Add(2 * time.Second)
	e.o.Sweep(context.Background())
	if got := get("/hls/s/1/v0/index.m3u8"); got != 404 {
		t.Fatalf("stream kept after --retention: GET = %d", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "s", "1")); !os.IsNotExist(err) {
		t.Errorf("stream directory left: %v", err)
	}
	if st, _ := e.put("/hls/s/1/v0/s1.ts", c, "late"); st != http.StatusConflict {
		t.Errorf("fence forgotten with the files: PUT = %d", st)
	}
	if _, _, m := e.do(http.MethodGet, "/metrics", "", nil); !strings.Contains(m, "portier_hls_origin_retention_deletions_total 7") {
		t.Errorf("retention deletions not counted (s0, s4, then the stream's 5 files):\n%s", m)
	}
}

func TestKeepAliveUploads(t *testing.T) {
	// Many uploads over one persistent connection, as ffmpeg -http_persistent 1 does.
	e := start(t, "", Params{})
	c := cred(3, 1, 1)
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/hls/s/3/v0/s%d.ts", e.srv.URL, i), chunked{strings.NewReader("abc")})
		req.Header.Set("Authorization", "Bearer "+c)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %d = %d", i, resp.StatusCode)
		}
	}
}

// slowBody delivers its bytes after a delay, like an uploader that cannot
// keep up with real time.
type slowBody struct {
	r     io.Reader
	delay time.Duration
	slept bool
}

func (s *slowBody) Read(p []byte) (int, error) {
	if !s.slept {
		s.slept = true
		time.Sleep(s.delay) // simulates the slow uploader; nothing is awaited
	}
	return s.r.Read(p)
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestSlowUploadWarningAndMetrics(t *testing.T) {
	var logs lockedBuffer
	e := start(t, "", Params{})
	e.o.log = slog.New(slog.NewTextHandler(&logs, nil))
	c := cred(1, 1, 1)
	if st, _, b := e.do(http.MethodPut, "/hls/s/1/v0/slow.ts", c, &slowBody{r: strings.NewReader("seg"), delay: 200 * time.Millisecond}); st != http.StatusCreated {
		t.Fatalf("PUT = %d %s", st, b)
	}
	e.mustPut("/hls/s/1/v0/fast.ts", c, "seg")
	e.mustPut("/hls/s/1/v0/index.m3u8", c, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.100,\nslow.ts\n#EXTINF:10.0,\nfast.ts\n")
	out := logs.String()
	if !strings.Contains(out, "slow segment upload") || !strings.Contains(out, "s/1/v0/slow.ts") || strings.Contains(out, "fast.ts") {
		t.Errorf("want one slow-upload warning for slow.ts, got:\n%s", out)
	}
	_, _ = e.put("/hls/s/1/v0/index.m3u8", c, mediaPlaylist(1, 0, "missing.ts"))
	e.do(http.MethodGet, "/hls/s/1/v0/fast.ts", token, nil)
	_, _, m := e.do(http.MethodGet, "/metrics", "", nil)
	for _, want := range []string{
		`portier_hls_origin_uploads_total{kind="segment",result="ok"} 2`,
		`portier_hls_origin_uploads_total{kind="playlist",result="missing_segment"} 1`,
		`portier_hls_origin_upload_seconds_count{kind="segment"} 2`,
		`portier_hls_origin_bytes_out_total 3`,
		`portier_hls_origin_storage_errors_total 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if l := e.o.Load(); l.Streams != 1 {
		t.Errorf("Load = %+v", l)
	}
}

// After a restart the origin finds the streams it holds and applies
// retention to them too (last write = newest file's modification time).
func TestRetentionAfterRestart(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Params{Retention: time.Minute})
	e.mustPut("/hls/s/4/v0/a.ts", cred(4, 1, 1), "a")
	e.mustPut("/hls/s/4/v0/index.m3u8", cred(4, 1, 1), mediaPlaylist(2, 0, "a.ts"))
	e.stop()
	e2 := start(t, dir, Params{Retention: time.Minute})
	e2.clk.Set(time.Now().Add(30 * time.Second))
	e2.o.Sweep(context.Background())
	if st, _, _ := e2.do(http.MethodGet, "/hls/s/4/v0/a.ts", token, nil); st != 200 {
		t.Fatalf("listed segment gone inside --retention: %d", st)
	}
	e2.clk.Add(time.Minute)
	e2.o.Sweep(context.Background())
	if st, _, _ := e2.do(http.MethodGet, "/hls/s/4/v0/index.m3u8", token, nil); st != http.StatusNotFound {
		t.Fatalf("stream kept past --retention after a restart: %d", st)
	}
}
