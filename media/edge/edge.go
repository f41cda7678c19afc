// Package edge is the edge side of the relay cluster: on-demand sources that
// pull one upstream copy of a stream from an origin into the local hub, with
// failover between origins, and the forwarding of publishes that arrive at
// an edge to the origin chosen by consistent hashing.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/stream"
)

// Directory finds the origins that hold a stream (the control plane's
// stream directory). controlclient.Client implements it.
type Directory interface {
	Directory(ctx context.Context, app, name string) ([]nodewire.Origin, error)
}

// Params configures an Edge. Zero durations select the defaults.
type Params struct {
	Hub *stream.Hub
	// Directory, if set, is asked first for the origins of a stream.
	Directory Directory
	// StaticOrigins (host:port) are tried after the directory's answer, and
	// alone when the directory is unreachable.
	StaticOrigins []string
	// NoOriginTimeout: when no origin has had the stream for this long, the
	// edge's publisher is closed so players are told the stream ended
	// (default 10 s).
	NoOriginTimeout time.Duration
	// UpstreamReadTimeout: an upstream session that delivers nothing for
	// this long is considered lost (default 500 ms).
	UpstreamReadTimeout time.Duration
	// DialTimeout bounds connecting to one origin and starting play
	// (default 2 s); DirectoryTimeout bounds one directory lookup
	// (default 800 ms).
	DialTimeout      time.Duration
	DirectoryTimeout time.Duration
	// RetryInterval is the pause after every origin failed (default 200 ms).
	RetryInterval time.Duration
	// MaxRate, RateWindow, RateGrace: a session whose media arrives more
	// than MaxRate times faster than real time for RateWindow, after the
	// first RateGrace (the origin's GOP cache burst), is ended as a loop
	// (defaults DefaultMaxRate, DefaultRateWindow, DefaultRateGrace).
	MaxRate    float64
	RateWindow time.Duration
	RateGrace  time.Duration
	Logger     *slog.Logger
}

// Edge creates pullers on demand and keeps their statistics.
//
// Concurrency rule: mu guards the pullers map and self only; it is never
// held while calling into the hub, the directory or the network.
type Edge struct {
	p   Params
	log *slog.Logger

	mu      sync.Mutex
	pullers map[string]*puller
	self    []string // this relay's own RTMP addresses (SetSelf)

	loopsRefused atomic.Uint64 // upstreams refused: own address or not an origin
	loopsEnded   atomic.Uint64 // sessions ended for running faster than real time

	sessions  atomic.Int64  // upstream sessions open now
	started   atomic.Uint64 // upstream sessions started
	failovers atomic.Uint64 // switches to another upstream while players waited
	ended     atomic.Uint64 // streams ended because no origin had them
}

// New builds an Edge; pass its OnDemand method as HubParams.OnDemand.
func New(p Params) *Edge {
	if p.NoOriginTimeout <= 0 {
		p.NoOriginTimeout = 10 * time.Second
	}
	if p.UpstreamReadTimeout <= 0 {
		p.UpstreamReadTimeout = 500 * time.Millisecond
	}
	if p.DialTimeout <= 0 {
		p.DialTimeout = 2 * time.Second
	}
	if p.DirectoryTimeout <= 0 {
		p.DirectoryTimeout = 800 * time.Millisecond
	}
	if p.RetryInterval <= 0 {
		p.RetryInterval = 200 * time.Millisecond
	}
	if p.MaxRate <= 0 {
		p.MaxRate = DefaultMaxRate
	}
	if p.RateWindow <= 0 {
		p.RateWindow = DefaultRateWindow
	}
	if p.RateGrace <= 0 {
		p.RateGrace = DefaultRateGrace
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Edge{p: p, log: p.Logger.With("component", "edge"), pullers: map[string]*puller{}}
}

// SetHub sets the hub when it must be built after the Edge (its OnDemand
// refers to the Edge). Call it before the hub serves readers.
func (e *Edge) SetHub(h *stream.Hub) { e.p.Hub = h }

// OnDemand starts a puller for path ("app/name"); it is the hub's
// HubParams.OnDemand.
func (e *Edge) OnDemand(path string) (stream.Source, error) {
	app, name, ok := strings.Cut(path, "/")
	if !ok || app == "" || name == "" {
		return nil, fmt.Errorf("edge pull %q: path must be app/name", path)
	}
	if e.p.Hub == nil {
		return nil, errors.New("edge pull: no hub")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pl := &puller{e: e, path: path, app: app, name: name, cancel: cancel, done: make(chan struct{}),
		log: e.log.With("path", path)}
	e.mu.Lock()
	e.pullers[path] = pl
	e.mu.Unlock()
	go pl.run(ctx)
	return pl, nil
}

// Stats are the edge's counters.
type Stats struct {
	UpstreamSessions int64  `json:"upstream_sessions"` // open now
	SessionsStarted  uint64 `json:"sessions_started"`
	Failovers        uint64 `json:"failovers"`
	EndedNoOrigin    uint64 `json:"ended_no_origin"`
	// LoopsRefused counts upstreams refused before dialling (this relay's
	// own address, or a node that is not an origin); LoopsEnded counts
	// sessions ended for delivering media faster than real time.
	LoopsRefused uint64 `json:"loops_refused"`
	LoopsEnded   uint64 `json:"loops_ended"`
}

// Stats returns the edge's counters.
func (e *Edge) Stats() Stats {
	return Stats{UpstreamSessions: e.sessions.Load(), SessionsStarted: e.started.Load(),
		Failovers: e.failovers.Load(), EndedNoOrigin: e.ended.Load(),
		LoopsRefused: e.loopsRefused.Load(), LoopsEnded: e.loopsEnded.Load()}
}

// Upstream is one puller's state, for the relay API.
type Upstream struct {
	Path      string    `json:"path"`
	Origin    string    `json:"origin"` // host:port of the origin pulled now, "" while switching
	Since     time.Time `json:"since"`
	Failovers uint64    `json:"failovers"`
}

// Upstreams lists the pullers, sorted by path.
func (e *Edge) Upstreams() []Upstream {
	e.mu.Lock()
	list := make([]Upstream, 0, len(e.pullers))
	for _, pl := range e.pullers {
		list = append(list, pl.info())
	}
	e.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list
}

// Upstream returns the state of the puller of path.
func (e *Edge) Upstream(path string) (Upstream, bool) {
	e.mu.Lock()
	pl := e.pullers[path]
	e.mu.Unlock()
	if pl == nil {
		return Upstream{}, false
	}
	return pl.info(), true
}

func (e *Edge) forget(pl *puller) {
	e.mu.Lock()
	if e.pullers[pl.path] == pl {
		delete(e.pullers, pl.path)
	}
	e.mu.Unlock()
}

// candidates lists the origins to try for app/name, best first: the
// directory's answer (or, when it is unreachable, the last answer it gave),
// then the static list; addresses in avoid go last. This relay's own
// addresses and directory entries of another role are left out, logged
// once per address in refused.
func (e *Edge) candidates(ctx context.Context, app, name string, last []string, avoid string, refused map[string]bool) (list, fromDir []string) {
	fromDir = last
	if e.p.Directory != nil {
		dctx, cancel := context.WithTimeout(ctx, e.p.DirectoryTimeout)
		origins, err := e.p.Directory.Directory(dctx, app, name)
		cancel()
		switch {
		case err == nil:
			fromDir = fromDir[:0:0]
			for _, o := range origins {
				if o.Role != "" && o.Role != nodewire.RoleOrigin {
					// The directory should name only origins; pulling
					// from an edge can close a loop.
					if !refused[o.RTMPAddress] {
						refused[o.RTMPAddress] = true
						e.refuse(app+"/"+name, o.RTMPAddress, "the directory names a node of role "+strconv.Quote(o.Role)+", not an origin")
					}
					continue
				}
				if o.RTMPAddress != "" {
					fromDir = append(fromDir, o.RTMPAddress)
				}
			}
		case errors.Is(err, controlclient.ErrNotFound):
			fromDir = nil
		}
	}
	seen := map[string]bool{}
	var tail []string
	for _, a := range append(append([]string{}, fromDir...), e.p.StaticOrigins...) {
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		if e.isSelf(a) {
			if !refused[a] {
				refused[a] = true
				e.refuse(app+"/"+name, a, "it is this relay's own address")
			}
			continue
		}
		if a == avoid {
			tail = append(tail, a)
			continue
		}
		list = append(list, a)
	}
	return append(list, tail...), fromDir
}
