package hlsrewrite

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/internal/boundedhash"
)

// Edge is a CDN edge as the directory knows it.
type Edge struct {
	Name string
	// BaseURL is where viewers reach it: http://host:port.
	BaseURL string
	// CapacityMbps is its registered egress capacity (its ring weight).
	CapacityMbps int
	// ActiveRequests is the load of its last heartbeat.
	ActiveRequests int
	// LastHeartbeat is when it last reported.
	LastHeartbeat time.Time
}

// edgeSet is one immutable view of the live edges: a ring over them and
// the membership generation it belongs to. The generation grows by one
// each time an edge leaves; it names the content-steering pathway whose
// segment URIs avoid every edge that had left by then ("g3").
type edgeSet struct {
	gen    int64
	edges  []Edge
	ring   *boundedhash.Ring
	live   map[string]int // name → index in edges
	hbSeen []time.Time    // per edge, the heartbeat its load was read at
}

// loadBook estimates the segment requests the rewriter has sent each edge
// lately. Freezing a segment on an edge sends it, over the next target
// durations, one request per viewer of that playlist; so each freeze adds
// the playlist's viewer estimate to the edge, and an edge's book decays
// with time constant loadTau. An edge's load is
// its book plus the active requests of its last heartbeat. A playlist's
// viewers are estimated from its reloads: each viewer reloads once per
// target duration, so reloads decayed with that time constant count them.
// Its mutex guards every map and is never held across I/O.
type loadBook struct {
	mu      sync.Mutex
	edges   map[string]*decaying
	viewers map[string]*decaying // by origin playlist path
}

// loadTau is the time constant of an edge's book, in target durations:
// long enough that the book tracks the requests an edge served over the
// last tens of seconds (what "load" means to viewers and to the bound),
// so the bound holds on those totals, not only at each instant.
const loadTau = 10

// decaying is a counter that decays exponentially with time constant tau.
type decaying struct {
	v   float64
	at  time.Time
	tau time.Duration
}

func (d *decaying) get(now time.Time) float64 {
	if dt := now.Sub(d.at); dt > 0 && d.tau > 0 {
		d.v *= math.Exp(-float64(dt) / float64(d.tau))
		d.at = now
	}
	return d.v
}

func (d *decaying) add(now time.Time, x float64) { d.v = d.get(now) + x }

func newLoadBook() *loadBook {
	return &loadBook{edges: map[string]*decaying{}, viewers: map[string]*decaying{}}
}

// reload counts one reload of the playlist at opath and returns its
// viewer estimate (at least 1).
func (b *loadBook) reload(opath string, target time.Duration, now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.viewers[opath]
	if d == nil {
		d = &decaying{at: now}
		b.viewers[opath] = d
	}
	d.tau = max(target, 500*time.Millisecond)
	d.add(now, 1)
	return max(d.v, 1)
}

// assign books w requests on edge name.
func (b *loadBook) assign(name string, w float64, target time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.edges[name]
	if d == nil {
		d = &decaying{at: now}
		b.edges[name] = d
	}
	d.tau = loadTau * max(target, 500*time.Millisecond)
	d.add(now, w)
}

// loads returns the loads of s's edges, in LoadUnits.
func (b *loadBook) loads(s *edgeSet, now time.Time) []int64 {
	out := make([]int64, len(s.edges))
	b.mu.Lock()
	for i, e := range s.edges {
		n := float64(e.ActiveRequests)
		if d := b.edges[e.Name]; d != nil {
			n += d.get(now)
		}
		out[i] = units(n)
	}
	b.mu.Unlock()
	return out
}

// sweep forgets playlists and edges not seen since old.
func (b *loadBook) sweep(old time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, d := range b.viewers {
		if d.at.Before(old) {
			delete(b.viewers, k)
		}
	}
	for k, d := range b.edges {
		if d.at.Before(old) {
			delete(b.edges, k)
		}
	}
}

// tracker keeps the current edgeSet: it reads the directory's edges every
// refresh interval, drops those whose last heartbeat is older than the
// alive window (an edge already on the ring that answers its probe: two
// alive windows) or that failed their last two health probes, and publishes
// a new edgeSet (atomic pointer; readers never lock) when the membership
// or loads change.
//
// After the directory failed (the database was down: no heartbeat could be
// written), every heartbeat it returns is stale for a moment, and dropping
// edges for that would take every edge off the ring at once. So for
// outageHold after the directory answers again, an edge of the current set
// stays however old its heartbeat (a probe still takes out one that is
// down), as portier/sched.DeathGate does for the reaper.
type tracker struct {
	dir     Directory
	alive   time.Duration
	every   time.Duration
	now     func() time.Time
	client  *http.Client
	probe   bool
	cur     atomic.Pointer[edgeSet]
	mu      sync.Mutex // guards failing, dirDown, dirBack (refresh runs in one goroutine; tests call it directly)
	failing map[string]int
	dirDown bool      // the last directory read failed
	dirBack time.Time // when the directory answered after failing
	onLeave func(names []string)
}

// outageHold is how long after a directory outage stale heartbeats keep an
// edge on the ring: two alive windows, so that each edge has heartbeated
// at least once since the database came back.
func (t *tracker) outageHold() time.Duration { return 2 * t.alive }

// holding records the result of a directory read and reports whether
// stale heartbeats are held (see tracker).
func (t *tracker) holding(err error, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		t.dirDown = true
		return true
	case t.dirDown:
		t.dirDown, t.dirBack = false, now
	}
	return !t.dirBack.IsZero() && now.Sub(t.dirBack) < t.outageHold()
}

func (t *tracker) get() *edgeSet { return t.cur.Load() }

// lateWindow: an edge of the current set whose heartbeat is older than the
// alive window but younger than lateWindow alive windows stays while its
// probe answers (see refresh).
const lateWindow = 2

// has reports whether the set (nil: none yet) holds the edge name.
func (s *edgeSet) has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.live[name]
	return ok
}

// refresh reads the directory once and publishes the live set.
func (t *tracker) refresh(ctx context.Context) error {
	all, err := t.dir.Edges(ctx)
	now := t.now()
	hold := t.holding(err, now)
	if err != nil {
		return err
	}
	prev := t.get()
	var live []Edge
	late := map[string]bool{}
	for _, e := range all {
		if e.BaseURL == "" {
			continue
		}
		age := now.Sub(e.LastHeartbeat)
		had := prev.has(e.Name)
		switch {
		case age <= t.alive, hold && had:
			live = append(live, e)
		case t.probe && had && age <= lateWindow*t.alive:
			// A heartbeat late by less than another alive window: the
			// edge may only have been moving to another control-plane
			// replica (a failover leaves a gap of up to two heartbeat
			// intervals). It stays if its probe answers now; a hung or
			// dead edge does not.
			live = append(live, e)
			late[e.Name] = true
		}
	}
	if t.probe {
		var up map[string]bool
		live, up = t.probeAll(ctx, live)
		live = slices.DeleteFunc(live, func(e Edge) bool { return late[e.Name] && !up[e.Name] })
	}
	slices.SortFunc(live, func(a, b Edge) int { return strings.Compare(a.Name, b.Name) })
	next := &edgeSet{edges: live, live: map[string]int{}}
	for i, e := range live {
		next.live[e.Name] = i
	}
	if prev != nil && sameRing(prev.edges, live) {
		// The ring depends on names and capacities only: most refreshes
		// change neither, and building it hashes and sorts 160 points
		// per Gbit/s of every edge.
		next.ring = prev.ring
	} else {
		ms := make([]boundedhash.Member, len(live))
		for i, e := range live {
			// Weight in Gbit/s: a 1 Gbit/s edge gets boundedhash.PointsPerWeight points.
			ms[i] = boundedhash.Member{ID: e.Name, Weight: float64(max(e.CapacityMbps, 1)) / 1000}
		}
		next.ring = boundedhash.New(ms)
	}
	var left []string
	if prev != nil {
		next.gen = prev.gen
		for name := range prev.live {
			if _, ok := next.live[name]; !ok {
				left = append(left, name)
			}
		}
		if len(left) > 0 {
			next.gen++
		}
	}
	t.cur.Store(next)
	if len(left) > 0 && t.onLeave != nil {
		t.onLeave(left)
	}
	return nil
}

// sameRing reports whether two sorted edge lists make the same ring: the
// same names with the same capacities.
func sameRing(a, b []Edge) bool {
	return slices.EqualFunc(a, b, func(x, y Edge) bool { return x.Name == y.Name && x.CapacityMbps == y.CapacityMbps })
}

// probeAll asks each edge's /healthz at once (bounded by a fraction of the
// refresh interval) and leaves out an edge whose last two probes failed:
// a killed edge leaves the ring within two refresh intervals, well inside
// one heartbeat interval, instead of after the heartbeat alive window.
//
// up has the edges that answered 200 (proved alive, not just not down).
func (t *tracker) probeAll(ctx context.Context, edges []Edge) (out []Edge, up map[string]bool) {
	ctx, cancel := context.WithTimeout(ctx, max(t.every*3/4, 100*time.Millisecond))
	defer cancel()
	// ok[i]: the probe did not prove the edge down. Only a refused or
	// reset connection or an error status counts against it: a timeout
	// may be this replica's own load, and a hung edge leaves with its
	// heartbeats (AliveWindow) anyway.
	ok := make([]bool, len(edges))
	answered := make([]bool, len(edges))
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.BaseURL+"/healthz", nil)
			if err != nil {
				return
			}
			resp, err := t.client.Do(req)
			if err != nil {
				var ne net.Error
				ok[i] = ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout())
				return
			}
			// Read the (short) answer to its end so that the connection
			// is reused: closed early it is dropped, and every refresh
			// dialled each edge anew (4 connections a second per edge).
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			ok[i] = resp.StatusCode == http.StatusOK
			answered[i] = ok[i]
		}()
	}
	wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	up = map[string]bool{}
	for i, e := range edges {
		if answered[i] {
			up[e.Name] = true
		}
		if ok[i] {
			delete(t.failing, e.Name)
		} else {
			t.failing[e.Name]++
		}
		if t.failing[e.Name] < 2 {
			out = append(out, e)
		}
	}
	return out, up
}

// run refreshes until ctx ends.
func (t *tracker) run(ctx context.Context, logf func(error)) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		if err := t.refresh(ctx); err != nil && ctx.Err() == nil {
			logf(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
