// Package cdnedge is a caching reverse proxy for HLS in front of one or
// more HLS origins (`portier cdn-edge`): it verifies viewers' signed URLs
// locally (internal/hlssign), keeps segments as immutable and playlists
// for at most half a target duration in a memory cache bounded by size,
// and fetches each object from an origin once however many viewers ask
// at once, streaming its bytes to all of them as they arrive.
package cdnedge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/internal/httpcors"
	"github.com/portier/portier/media/httpserve"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Params.
const (
	DefaultCacheBytes   = 512 << 20
	DefaultDiskBytes    = 10 << 30
	DefaultOriginTimout = 30 * time.Second
	// DefaultStaleFor is how long past its freshness a playlist is still
	// served while one refresh runs.
	DefaultStaleFor = 6 * time.Second
	maxPlaylistTTL  = 5 * time.Second
)

// Params configures an Edge.
type Params struct {
	// Origins are the base URLs of HLS origins (http://host:port); a fill
	// tries them in order from one chosen by the object's key and moves on
	// when one fails or does not have the object.
	Origins []string
	// ClusterToken authorises reads at the origins; the viewer signature
	// secret is derived from it (hlssign.Secret).
	ClusterToken string
	// CacheBytes bounds the bytes of cached bodies (default 512 MiB).
	CacheBytes int64
	// MaxObjectBytes: larger objects are streamed to their viewers but not
	// kept (default CacheBytes/8).
	MaxObjectBytes int64
	// DiskDir, when set, adds a disk tier for segments there (emptied at
	// start), bounded by DiskBytes (default DefaultDiskBytes).
	DiskDir   string
	DiskBytes int64
	// AllowOrigins are the CORS origins allowed; empty or "*": any.
	AllowOrigins []string
	// StaleFor: see DefaultStaleFor.
	StaleFor time.Duration
	// OriginTimeout bounds one origin fetch, body included.
	OriginTimeout time.Duration
	// Transport reaches the origins (default: a clone of
	// http.DefaultTransport with more idle connections per host).
	Transport http.RoundTripper
	Now       func() time.Time
	Logger    *slog.Logger
}

// Edge is one CDN edge. Its cache has its own concurrency rule (see
// cache); fills run in their own goroutines, detached from the viewer
// that started them, so a viewer leaving never cuts the others.
type Edge struct {
	p       Params
	log     *slog.Logger
	secret  string
	origins []*url.URL
	client  *http.Client
	cache   *cache
	disk    *diskCache // nil: memory only
	m       *metrics
	cors    httpcors.Policy

	ctx    context.Context // fills; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates p and builds an Edge.
func New(p Params) (*Edge, error) {
	if len(p.Origins) == 0 {
		return nil, errors.New("cdnedge: no origin")
	}
	if p.ClusterToken == "" {
		return nil, errors.New("cdnedge: a cluster token is required (it authorises origin reads and derives the viewer signature secret)")
	}
	e := &Edge{p: p}
	for _, o := range p.Origins {
		u, err := url.Parse(strings.TrimRight(o, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("cdnedge: origin %q: want http(s)://host[:port]", o)
		}
		e.origins = append(e.origins, u)
	}
	if p.CacheBytes <= 0 {
		p.CacheBytes = DefaultCacheBytes
	}
	if p.MaxObjectBytes <= 0 || p.MaxObjectBytes > p.CacheBytes {
		p.MaxObjectBytes = max(p.CacheBytes/8, 1)
	}
	if p.StaleFor <= 0 {
		p.StaleFor = DefaultStaleFor
	}
	if p.OriginTimeout <= 0 {
		p.OriginTimeout = DefaultOriginTimout
	}
	if p.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.ResponseHeaderTimeout = 10 * time.Second
		p.Transport = t
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	e.p = p
	e.log = p.Logger.With("component", "cdn-edge")
	e.secret = hlssign.Secret(p.ClusterToken)
	e.client = &http.Client{Transport: p.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	e.cache = newCache(p.CacheBytes)
	if p.DiskDir != "" {
		if p.DiskBytes <= 0 {
			p.DiskBytes = DefaultDiskBytes
		}
		e.p.DiskBytes = p.DiskBytes
		d, err := newDiskCache(p.DiskDir, p.DiskBytes)
		if err != nil {
			return nil, err
		}
		e.disk = d
	}
	e.m = newMetrics(func() float64 { u, _, _ := e.cache.stats(); return float64(u) }, float64(p.CacheBytes))
	e.cors = httpcors.New(p.AllowOrigins, "Content-Length", "Content-Range", "ETag", "Last-Modified", "Age", "X-Cache")
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// Close cancels fills in flight and waits for them.
func (e *Edge) Close() error {
	e.cancel()
	e.wg.Wait()
	return nil
}

// Registry is the edge's Prometheus registry.
func (e *Edge) Registry() *prometheus.Registry { return e.m.registry }

// Collectors are the edge's metrics, for another registry (`portier run`).
func (e *Edge) Collectors() []prometheus.Collector { return e.m.collectors() }

// Handler serves /hls/s/ only (for mounting on another role's address).
func (e *Edge) Handler() http.Handler { return http.HandlerFunc(e.serveHLS) }

// HTTPHandler is the whole listener of `portier cdn-edge`: /hls/s/,
// /metrics, /healthz and /readyz.
func (e *Edge) HTTPHandler() http.Handler {
	return httpserve.Role{
		Prefix: "/hls/", Serve: e.Handler(), Metrics: e.m.registry, Ready: e.Ready,
		NotReady: func(w http.ResponseWriter, r *http.Request, err error) {
			e.fail(w, r, http.StatusServiceUnavailable, "not_ready", "no origin is reachable", err)
		},
	}.Handler()
}

// Ready checks that at least one origin answers its /healthz.
func (e *Edge) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var errs []error
	for _, o := range e.origins {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.String()+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := e.client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		errs = append(errs, fmt.Errorf("origin %s: /healthz answered %s", o.Host, resp.Status))
	}
	return errors.Join(errs...)
}

// Load is the edge's load for heartbeats.
func (e *Edge) Load() Load {
	used, objects, _ := e.cache.stats()
	l := e.m.load(e.p.Now())
	l.CacheBytes, l.CacheCapacityBytes, l.CachedObjects = used, e.p.CacheBytes, objects
	if e.disk != nil {
		du, dn := e.disk.stats()
		l.DiskBytes, l.DiskCapacityBytes, l.DiskObjects = du, e.p.DiskBytes, dn
	}
	return l
}

// fail is the one place that maps a refusal to a status and a JSON body
// {"error":{"code","message","id"}}; the id is also in the log line.
func (e *Edge) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string, err error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	lvl := slog.LevelDebug
	if status >= 500 {
		lvl = slog.LevelWarn
	}
	args := []any{"id", id, "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "msg", msg}
	if err != nil {
		args = append(args, "err", err)
	}
	e.log.Log(r.Context(), lvl, "hls request refused", args...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			ID      string `json:"id"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message, body.Error.ID = code, msg, id
	_ = json.NewEncoder(w).Encode(body)
}
