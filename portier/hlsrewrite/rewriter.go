// Package hlsrewrite is the control plane's HLS playlist rewriter: viewers
// fetch a stream's master and media playlists from it, and it rewrites
// every segment URI to an absolute, signed URL on one live CDN edge chosen
// by bounded-load consistent hashing (internal/boundedhash) of a key made
// of the URI's first D path segments below /hls/s/.
//
// Three rules shape it:
//
//   - Stability. A segment's URI never changes while it is listed: the edge
//     chosen for a segment is frozen the first time the segment is listed
//     (per membership generation, below). hls.js discards a reload in
//     which a listed segment's URI changed; RFC 8216 6.2.1 forbids it.
//   - Edge death. The live edges are read from the directory every
//     RefreshEvery and probed; an edge that stops answering leaves the
//     ring within two refreshes and the membership generation grows. The
//     master playlist carries HLS content steering (EXT-X-CONTENT-STEERING)
//     whose pathway "gN" means "segment URIs of generation N": a segment's
//     frozen edge is kept in generation N while that edge was live in N,
//     and is re-chosen once in the first generation where it is not. The
//     steering manifest (reloaded by players every SteeringTTL) clones the
//     master's pathway into the current generation's
//     (URI-REPLACEMENT PARAMS pw=N), so players move to media playlists
//     whose URIs avoid the dead edge, without a page reload and without
//     any listed URI changing inside one pathway.
//   - Local authorisation. Play tokens (token.go) and the edges' signed
//     URLs (internal/hlssign) are HMACs: no database read per request on
//     the edges, one cached stream lookup per stream on the rewriter.
//
// Concurrency: the live edge set is an immutable value behind an atomic
// pointer, replaced by one refresh goroutine; the frozen assignments, the
// load book, the fetch cache and the stream cache each have one mutex
// that is never held across I/O.
package hlsrewrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/internal/httpcors"
)

// Key depths: how many path segments below /hls/s/ make the hashing key.
const (
	DepthStream    = 1 // /hls/s/ID
	DepthRendition = 2 // /hls/s/ID/REND
	DepthSegment   = 3 // /hls/s/ID/REND/SEGMENT
)

// Defaults of Params.
const (
	DefaultKeyDepth      = DepthRendition
	DefaultBalanceFactor = 1.25
	DefaultSignTTL       = time.Hour
	DefaultPlayTokenTTL  = 6 * time.Hour
	DefaultRefreshEvery  = 250 * time.Millisecond
	DefaultSteeringTTL   = time.Second
)

// ParseKeyDepth reads a --hls-key-depth: stream, rendition, segment or 1-3.
func ParseKeyDepth(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "stream", "1":
		return DepthStream, nil
	case "rendition", "2":
		return DepthRendition, nil
	case "segment", "3":
		return DepthSegment, nil
	}
	return 0, fmt.Errorf("key depth %q: want stream, rendition or segment (1, 2 or 3 path segments below /hls/s/)", s)
}

// Stream is what the rewriter needs of a stream.
type Stream struct {
	ID int64
	// Public: viewers need no play token.
	Public bool
}

// Directory is what the rewriter needs of the control plane: the CDN edges
// with their last heartbeat and load, and streams by app and name
// (ErrNotFound for an unknown stream).
type Directory interface {
	Edges(ctx context.Context) ([]Edge, error)
	StreamByName(ctx context.Context, app, name string) (Stream, error)
}

// Params configures a Rewriter.
type Params struct {
	Directory Directory
	Origin    Origin
	// Secret signs edge URLs (hlssign) and play tokens: hlssign.Secret(cluster token).
	Secret string
	// KeyDepth: DepthStream, DepthRendition (default) or DepthSegment.
	KeyDepth int
	// BalanceFactor is c of the bounded-load rule (default 1.25).
	BalanceFactor float64
	// SignTTL is how long a signed edge URL stays valid (default 1 h).
	SignTTL time.Duration
	// AliveWindow: an edge whose last heartbeat is older is not live
	// (default 1.5 × the 1 s heartbeat interval).
	AliveWindow time.Duration
	// RefreshEvery is how often the live edges are read and probed (default 250 ms).
	RefreshEvery time.Duration
	// NoProbe turns off the edges' /healthz probes (heartbeats only).
	NoProbe bool
	// SteeringTTL is the TTL of the steering manifest (default 1 s).
	SteeringTTL time.Duration
	// AllowOrigins are the CORS origins allowed; empty or "*": any.
	AllowOrigins []string
	// Client probes edges (default: a client with a short timeout).
	Client *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// Rewriter serves viewers' playlists. Mount its ServeHTTP on /hls/.
type Rewriter struct {
	p       Params
	log     *slog.Logger
	cors    httpcors.Policy
	edges   *tracker
	book    *loadBook
	fetch   *fetcher
	m       *metrics
	streams streamCache

	mu     sync.Mutex // guards tables
	tables map[int64]*assignTable

	sigMu sync.Mutex // guards sigs
	sigs  map[string]signed

	renderMu sync.Mutex // guards rendered
	rendered map[renderKey]rendered

	viewers viewerCounter
}

// signed is a stream prefix's signature, reused while it has more than
// half its TTL left (so reloads list identical URLs).
type signed struct {
	query string
	exp   time.Time
}

// New validates p and builds a Rewriter; Start runs its edge tracker.
func New(p Params) (*Rewriter, error) {
	if p.Directory == nil || p.Origin == nil {
		return nil, errors.New("hlsrewrite: Directory and Origin are required")
	}
	if p.Secret == "" {
		return nil, errors.New("hlsrewrite: Secret is required (hlssign.Secret of the cluster token)")
	}
	if p.KeyDepth == 0 {
		p.KeyDepth = DefaultKeyDepth
	}
	if p.KeyDepth < DepthStream || p.KeyDepth > DepthSegment {
		return nil, fmt.Errorf("hlsrewrite: key depth %d: want 1 (stream), 2 (rendition) or 3 (segment)", p.KeyDepth)
	}
	if p.BalanceFactor == 0 {
		p.BalanceFactor = DefaultBalanceFactor
	}
	if p.BalanceFactor < 1 {
		return nil, fmt.Errorf("hlsrewrite: balance factor %v: want at least 1, e.g. 1.25", p.BalanceFactor)
	}
	if p.SignTTL <= 0 {
		p.SignTTL = DefaultSignTTL
	}
	if p.AliveWindow <= 0 {
		p.AliveWindow = 1500 * time.Millisecond
	}
	if p.RefreshEvery <= 0 {
		p.RefreshEvery = DefaultRefreshEvery
	}
	if p.SteeringTTL <= 0 {
		p.SteeringTTL = DefaultSteeringTTL
	}
	if p.Client == nil {
		p.Client = &http.Client{Timeout: time.Second}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	r := &Rewriter{p: p, log: p.Logger.With("component", "hls-rewriter"), cors: httpcors.New(p.AllowOrigins, "Content-Length", "Age", "X-Portier-Pathway"),
		book: newLoadBook(), tables: map[int64]*assignTable{},
		sigs: map[string]signed{}, rendered: map[renderKey]rendered{}, m: newMetrics()}
	r.streams = streamCache{dir: p.Directory, now: p.Now, m: map[string]*cachedStream{}}
	r.fetch = &fetcher{origin: p.Origin, now: p.Now, count: r.m.originFetches.Inc, m: map[string]*fetched{}}
	r.edges = &tracker{dir: p.Directory, alive: p.AliveWindow, every: p.RefreshEvery, now: p.Now, client: p.Client,
		probe: !p.NoProbe, failing: map[string]int{}}
	r.edges.onLeave = func(names []string) {
		r.m.generation.Inc()
		r.log.Warn("cdn edges left the ring", "edges", names, "generation", r.edges.get().gen)
	}
	return r, nil
}

// Start reads the live edges once and keeps them fresh until ctx ends.
func (r *Rewriter) Start(ctx context.Context) {
	if err := r.edges.refresh(ctx); err != nil {
		r.log.Warn("read cdn edges", "err", err)
	}
	go r.edges.run(ctx, func(err error) { r.log.Warn("read cdn edges", "err", err) })
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.sweep()
			}
		}
	}()
}

// Refresh reads the live edges now (tests).
func (r *Rewriter) Refresh(ctx context.Context) error { return r.edges.refresh(ctx) }

// PlayToken returns a play token for stream id valid for ttl.
func (r *Rewriter) PlayToken(id int64, ttl time.Duration) string {
	return IssueToken(r.p.Secret, id, r.p.Now().Add(ttl))
}

// ViewerPath is the path of a stream's master playlist on the control
// plane: /hls/APP/NAME/master.m3u8. The app "s" is spelt "~s" (any app
// may be): /hls/s/ is the origin's and the edges' path.
func ViewerPath(app, name string) string {
	if app == "s" {
		app = "~s"
	}
	return "/hls/" + url.PathEscape(app) + "/" + url.PathEscape(name) + "/master.m3u8"
}

// viewerReq is a parsed viewer path.
type viewerReq struct {
	app, appSeg, name, rendition string
	kind                         string // master, media, steering
}

func parseViewerPath(p string) (viewerReq, error) {
	rest, ok := strings.CutPrefix(p, "/hls/")
	if !ok {
		return viewerReq{}, errBadPath
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 || len(parts) > 4 {
		return viewerReq{}, errBadPath
	}
	v := viewerReq{appSeg: parts[0], app: strings.TrimPrefix(parts[0], "~"), name: parts[1]}
	if parts[0] == "s" {
		return v, errAppS
	}
	if !validName(v.app) || !validName(v.name) {
		return v, errBadPath
	}
	switch {
	case len(parts) == 3 && parts[2] == "master.m3u8":
		v.kind = "master"
	case len(parts) == 3 && parts[2] == "steering.json":
		v.kind = "steering"
	case len(parts) == 4 && parts[3] == "index.m3u8" && validName(parts[2]):
		v.rendition, v.kind = parts[2], "media"
	default:
		return v, errBadPath
	}
	return v, nil
}

// validName is the control plane's name rule (compile.NameRule).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

var (
	errBadPath = errors.New("want /hls/APP/NAME/master.m3u8, /hls/APP/NAME/RENDITION/index.m3u8 or /hls/APP/NAME/steering.json")
	errAppS    = errors.New("/hls/s/ is the HLS origin's and the CDN edges' path: the viewer URLs of the app \"s\" are /hls/~s/NAME/master.m3u8")
	errNoEdge  = errors.New("no live CDN edge: start `portier cdn-edge` (or wait for one to heartbeat)")
)

// ServeHTTP answers viewers under /hls/.
func (r *Rewriter) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !r.cors.Apply(w, req) {
		r.fail(w, req, "cors", http.StatusForbidden, errors.New("this page's origin is not allowed to load these playlists (--hls-allowed-origins)"))
		return
	}
	if req.Method == http.MethodOptions {
		r.cors.Preflight(w, req)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		r.fail(w, req, "bad", http.StatusMethodNotAllowed, errors.New("playlists are read with GET"))
		return
	}
	v, err := parseViewerPath(req.URL.Path)
	if err != nil {
		r.fail(w, req, "bad", http.StatusNotFound, err)
		return
	}
	st, err := r.streams.get(req.Context(), v.app, v.name)
	if errors.Is(err, ErrNotFound) {
		r.fail(w, req, v.kind, http.StatusNotFound, fmt.Errorf("no stream %s/%s", v.app, v.name))
		return
	}
	if err != nil {
		r.fail(w, req, v.kind, http.StatusServiceUnavailable, err)
		return
	}
	tok := req.URL.Query().Get("token")
	if !st.Public {
		if err := CheckToken(r.p.Secret, st.ID, tok, r.p.Now()); err != nil {
			r.fail(w, req, v.kind, http.StatusForbidden, err)
			return
		}
	}
	set := r.edges.get()
	if set == nil || len(set.edges) == 0 {
		r.fail(w, req, v.kind, http.StatusServiceUnavailable, errNoEdge)
		return
	}
	base := r.base(req)
	switch v.kind {
	case "steering":
		r.serveSteering(w, req, v, set, base, tok)
		return
	case "master":
		body, err := r.fetch.get(req.Context(), hlssign.StreamPrefix(st.ID)+"master.m3u8")
		if r.originFailed(w, req, v.kind, err) {
			return
		}
		r.write(w, req, v.kind, r.rewriteMaster(body, st.ID, v, set.gen, base, tok))
	case "media":
		pw := set.gen
		if s := req.URL.Query().Get("pw"); s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n < pw {
				pw = n
			}
		}
		opath := hlssign.StreamPrefix(st.ID) + v.rendition + "/index.m3u8"
		body, err := r.fetch.get(req.Context(), opath)
		if r.originFailed(w, req, v.kind, err) {
			return
		}
		r.viewers.add(st.ID, v.app, v.name, targetDuration(body), r.p.Now())
		out, err := r.rewriteMedia(body, st.ID, opath, pw, set)
		if err != nil {
			r.fail(w, req, v.kind, http.StatusServiceUnavailable, err)
			return
		}
		w.Header().Set("X-Portier-Pathway", "g"+strconv.FormatInt(pw, 10))
		r.write(w, req, v.kind, out)
	}
}

func (r *Rewriter) originFailed(w http.ResponseWriter, req *http.Request, kind string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound):
		r.fail(w, req, kind, http.StatusNotFound, errors.New("the stream has no HLS playlist now (is it live with an HLS task?)"))
	default:
		r.fail(w, req, kind, http.StatusBadGateway, fmt.Errorf("HLS origin: %w", err))
	}
	return true
}

func (r *Rewriter) write(w http.ResponseWriter, req *http.Request, kind string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	r.m.request(kind, http.StatusOK)
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

// fail answers an error as JSON with an id that is also logged.
func (r *Rewriter) fail(w http.ResponseWriter, req *http.Request, kind string, status int, err error) {
	r.m.request(kind, status)
	id := strconv.FormatInt(r.p.Now().UnixNano()%1e12, 36)
	if status >= 500 {
		r.log.Warn("hls playlist request failed", "id", id, "path", req.URL.Path, "status", status, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": err.Error(), "id": id}})
}

// base is the scheme://host the viewer reached this replica at.
func (r *Rewriter) base(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil || strings.EqualFold(req.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

// signQuery returns the signature query of a stream prefix.
func (r *Rewriter) signQuery(prefix string) string {
	now := r.p.Now()
	r.sigMu.Lock()
	defer r.sigMu.Unlock()
	s, ok := r.sigs[prefix]
	if !ok || s.exp.Sub(now) < r.p.SignTTL/2 {
		exp := now.Add(r.p.SignTTL).Truncate(time.Second)
		s = signed{query: hlssign.Sign(r.p.Secret, prefix, exp).Encode(), exp: exp}
		r.sigs[prefix] = s
	}
	return s.query
}

// sweep forgets assignments and fetches of playlists no longer read.
func (r *Rewriter) sweep() {
	old := r.p.Now().Add(-2 * time.Minute)
	r.fetch.sweep(old)
	r.book.sweep(old)
	r.renderMu.Lock()
	clear(r.rendered) // rebuilt by the next reload of each playlist
	r.renderMu.Unlock()
	r.mu.Lock()
	for id, t := range r.tables {
		if t.sweep(old) == 0 {
			delete(r.tables, id)
		}
	}
	r.mu.Unlock()
	r.streams.sweep(old)
}

// streamCache keeps stream lookups for 2 s: a playlist reload must not be
// a database read. Its mutex guards m and is not held across the lookup.
type streamCache struct {
	dir Directory
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*cachedStream
}

type cachedStream struct {
	st  Stream
	err error
	at  time.Time
}

func (c *streamCache) get(ctx context.Context, app, name string) (Stream, error) {
	k := app + "/" + name
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e != nil && c.now().Sub(e.at) < 2*time.Second {
		return e.st, e.err
	}
	st, err := c.dir.StreamByName(ctx, app, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return st, err // not cached: a database hiccup
	}
	c.mu.Lock()
	c.m[k] = &cachedStream{st: st, err: err, at: c.now()}
	c.mu.Unlock()
	return st, err
}

func (c *streamCache) sweep(old time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.at.Before(old) {
			delete(c.m, k)
		}
	}
}
