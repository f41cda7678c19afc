// Package hlsorigin is the storage half of HLS: it takes the playlists and
// segments that HLS transcode tasks PUT (each task authenticated and fenced
// by its internal/hlscred credential), stores them in a Backend (a
// directory or an S3 bucket) so that a segment is stored before any
// playlist that lists it, serves them to CDN edges and the control plane
// with the cluster token, and deletes them when RFC 8216's retention
// window has passed.
package hlsorigin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/media/httpserve"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Params.
const (
	DefaultMaxSegmentBytes  = 64 << 20
	DefaultStreamQuotaBytes = 4 << 30
	DefaultRetention        = 10 * time.Minute
	maxPlaylistBytes        = 1 << 20
)

// Params configures an Origin.
type Params struct {
	Backend Backend
	// ClusterToken verifies task credentials and authorises reads.
	ClusterToken string
	// MaxSegmentBytes bounds one object (413 above it).
	MaxSegmentBytes int64
	// StreamQuotaBytes bounds the bytes one stream stores (413 above it).
	StreamQuotaBytes int64
	// Retention: a stream's files are removed this long after its last write.
	Retention time.Duration
	// SweepInterval is how often retention runs (default 1 s); Start runs it.
	SweepInterval time.Duration
	// Now is the clock (tests inject one); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Origin is the HLS origin. Its streams map is guarded by mu (never held
// across I/O or another lock's acquisition); each stream's state has its
// own lock (see streamState).
type Origin struct {
	p   Params
	log *slog.Logger
	m   *metrics

	mu      sync.Mutex
	streams map[int64]*streamState

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// New validates p and builds an Origin; Start loads what the backend holds
// and starts retention.
func New(p Params) (*Origin, error) {
	if p.Backend == nil {
		return nil, errors.New("hlsorigin: no backend")
	}
	if p.ClusterToken == "" {
		return nil, errors.New("hlsorigin: a cluster token is required (it verifies task credentials and authorises reads)")
	}
	if p.MaxSegmentBytes <= 0 {
		p.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if p.StreamQuotaBytes <= 0 {
		p.StreamQuotaBytes = DefaultStreamQuotaBytes
	}
	if p.Retention <= 0 {
		p.Retention = DefaultRetention
	}
	if p.SweepInterval <= 0 {
		p.SweepInterval = time.Second
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Origin{p: p, log: p.Logger.With("component", "hls-origin"), m: newMetrics(), streams: map[int64]*streamState{}}, nil
}

// Start discovers the streams the backend holds (so that retention covers
// them after a restart) and runs retention until Close.
func (o *Origin) Start(ctx context.Context) error {
	infos, err := o.p.Backend.List(ctx, "s/")
	if err != nil {
		o.m.storageError()
		return err
	}
	o.mu.Lock()
	for _, in := range infos {
		if ob, ok := parseKey(in.Key); ok && o.streams[ob.Stream] == nil {
			o.streams[ob.Stream] = newStreamState(ob.Stream)
		}
	}
	o.mu.Unlock()
	ctx, o.cancel = context.WithCancel(ctx)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		t := time.NewTicker(o.p.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				o.Sweep(ctx)
			}
		}
	}()
	return nil
}

// Close stops retention.
func (o *Origin) Close() error {
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
	return nil
}

// Registry is the origin's Prometheus registry.
func (o *Origin) Registry() *prometheus.Registry { return o.m.registry }

// Collectors are the origin's metrics, for another registry (`portier run`
// serves them on the control plane's /metrics).
func (o *Origin) Collectors() []prometheus.Collector {
	return []prometheus.Collector{o.m.uploads, o.m.latency, o.m.bytesIn, o.m.bytesOut, o.m.deletions, o.m.storageErr}
}

// Load is the origin's load since the previous call, for heartbeats.
func (o *Origin) Load() Load {
	l := o.m.load(o.p.Now())
	o.mu.Lock()
	l.Streams = len(o.streams)
	o.mu.Unlock()
	return l
}

// Handler serves /hls/s/ only (for mounting on another role's address).
func (o *Origin) Handler() http.Handler { return http.HandlerFunc(o.serveHLS) }

// HTTPHandler is the whole listener of `portier hls-origin`: /hls/s/,
// /metrics, /healthz and /readyz.
func (o *Origin) HTTPHandler() http.Handler {
	return httpserve.Role{
		Prefix: "/hls/", Serve: o.Handler(), Metrics: o.m.registry, Ready: o.Ready,
		NotReady: func(w http.ResponseWriter, r *http.Request, err error) {
			o.fail(w, r, http.StatusServiceUnavailable, "not_ready", "storage is not writable", err)
		},
	}.Handler()
}

// Ready checks that the backend takes a write.
func (o *Origin) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := o.p.Backend.Put(ctx, "probe/readyz", strings.NewReader(o.p.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		o.m.storageError()
		return err
	}
	return nil
}

// serveHLS routes /hls/s/... by method; the path is checked first.
func (o *Origin) serveHLS(w http.ResponseWriter, r *http.Request) {
	ob, ok := parsePath(r.URL.Path)
	if !ok || r.URL.RawPath != "" {
		o.fail(w, r, http.StatusBadRequest, "bad_path",
			"want /hls/s/{streamID}/master.m3u8, /hls/s/{streamID}/{rendition}/index.m3u8 or /hls/s/{streamID}/{rendition}/{segment}.ts|.m4s|.mp4", nil)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		o.serveRead(w, r, ob)
	case http.MethodPut:
		o.servePut(w, r, ob)
	case http.MethodDelete:
		o.serveDelete(w, r, ob)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		o.fail(w, r, http.StatusMethodNotAllowed, "method", "want GET, HEAD, PUT or DELETE", nil)
	}
}

// bearer is the request's bearer token, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (o *Origin) isClusterToken(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(o.p.ClusterToken)) == 1
}

// fail is the one place that maps an error to a status and a JSON body
// {"error":{"code","message","id"}}; the id is also in the log line.
func (o *Origin) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string, err error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	lvl := slog.LevelDebug
	if status >= 500 {
		lvl = slog.LevelError
	} else if status == http.StatusConflict || status == http.StatusRequestEntityTooLarge {
		lvl = slog.LevelWarn
	}
	args := []any{"id", id, "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "msg", msg}
	if err != nil {
		args = append(args, "err", err)
	}
	o.log.Log(r.Context(), lvl, "hls request refused", args...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
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
