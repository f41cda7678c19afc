// Package history keeps the last hour of the cluster's and each live
// stream's bitrate and viewers in memory, for the dashboard's graphs. Each
// control-plane replica samples the store on its own: the graphs of two
// replicas agree because they sample the same rows, and a replica that
// starts shows what it has seen since.
package history

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Point is one sample of a stream or of the whole cluster.
type Point struct {
	At         time.Time
	BitrateIn  int64 // bit/s into the relays (publishes)
	BitrateOut int64 // bit/s out of the relays (players, edges' pulls); 0 per stream
	Viewers    int
}

// Snapshot is what a Source reads at one moment.
type Snapshot struct {
	Totals  Point           // At is set by the Recorder
	Streams map[int64]Point // by stream id; live streams only
}

// Source reads the current figures (from the store).
type Source func(ctx context.Context) (Snapshot, error)

// Params configures a Recorder.
type Params struct {
	Source Source
	// Interval between samples (default 10 s); Window is how far back the
	// graphs go (default 1 h).
	Interval, Window time.Duration
	Now              func() time.Time
	Logger           *slog.Logger
}

// Recorder samples a Source every Interval and keeps Window of points.
type Recorder struct {
	p Params

	mu      sync.Mutex
	totals  ring
	streams map[int64]*ring

	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a Recorder; Start begins sampling.
func New(p Params) *Recorder {
	if p.Interval <= 0 {
		p.Interval = 10 * time.Second
	}
	if p.Window <= 0 {
		p.Window = time.Hour
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Recorder{p: p, totals: newRing(p.size()), streams: map[int64]*ring{}}
}

func (p Params) size() int { return int(p.Window/p.Interval) + 1 }

// Start samples at once and then every Interval until Close.
func (r *Recorder) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.p.Interval)
		defer t.Stop()
		for {
			if err := r.Sample(ctx); err != nil && ctx.Err() == nil {
				r.p.Logger.Warn("history sample failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops sampling and waits for the sampler; safe to call twice or
// without Start.
func (r *Recorder) Close() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
}

// Sample reads the Source once and records its figures.
func (r *Recorder) Sample(ctx context.Context) error {
	snap, err := r.p.Source(ctx)
	if err != nil {
		return err
	}
	now := r.p.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	snap.Totals.At = now
	r.totals.add(snap.Totals)
	for id, pt := range snap.Streams {
		rg := r.streams[id]
		if rg == nil {
			g := newRing(r.p.size())
			rg = &g
			r.streams[id] = rg
		}
		pt.At = now
		rg.add(pt)
	}
	// A stream that has not been live for a whole window has no graph left.
	for id, rg := range r.streams {
		if last, ok := rg.last(); !ok || now.Sub(last.At) > r.p.Window {
			delete(r.streams, id)
		}
	}
	return nil
}

// Totals returns the cluster's points of the window, oldest first.
func (r *Recorder) Totals() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.totals.points(r.p.Now().Add(-r.p.Window))
}

// Stream returns a stream's points of the window, oldest first (nil if it
// was not live in it).
func (r *Recorder) Stream(id int64) []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	rg := r.streams[id]
	if rg == nil {
		return nil
	}
	return rg.points(r.p.Now().Add(-r.p.Window))
}

// ring is a fixed-size buffer of the latest points.
type ring struct {
	buf  []Point
	next int
	full bool
}

func newRing(n int) ring { return ring{buf: make([]Point, n)} }

func (g *ring) add(p Point) {
	g.buf[g.next] = p
	g.next = (g.next + 1) % len(g.buf)
	if g.next == 0 {
		g.full = true
	}
}

func (g *ring) last() (Point, bool) {
	if !g.full && g.next == 0 {
		return Point{}, false
	}
	return g.buf[(g.next-1+len(g.buf))%len(g.buf)], true
}

// points returns the points at or after since, oldest first.
func (g *ring) points(since time.Time) []Point {
	var out []Point
	start, n := 0, g.next
	if g.full {
		start, n = g.next, len(g.buf)
	}
	for i := 0; i < n; i++ {
		p := g.buf[(start+i)%len(g.buf)]
		if !p.At.Before(since) {
			out = append(out, p)
		}
	}
	return out
}
