package hlsrewrite

import (
	"math"
	"strings"
	"sync"
	"time"
)

// assignTable holds one stream's frozen segment assignments. Its mutex
// guards segs and is never held across I/O.
type assignTable struct {
	mu   sync.Mutex
	segs map[string]*segAssign // by origin path
}

// segAssign is where one segment is served: recs[k] holds from generation
// recs[k].gen on (recs in increasing gen). A new record is added only in
// the current generation and only when the previous one's edge has left,
// so the URI a pathway lists for a segment never changes.
type segAssign struct {
	recs []rec
	seen time.Time
}

type rec struct {
	gen  int64
	name string
	base string // the edge's base URL, kept after the edge leaves
}

// at returns the record that holds in generation g.
func (a *segAssign) at(g int64) rec {
	r := a.recs[0]
	for _, x := range a.recs[1:] {
		if x.gen > g {
			break
		}
		r = x
	}
	return r
}

// sweep drops segments not listed since old and returns how many remain.
func (t *assignTable) sweep(old time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, a := range t.segs {
		if a.seen.Before(old) {
			delete(t.segs, k)
		}
	}
	return len(t.segs)
}

func (r *Rewriter) table(id int64) *assignTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tables[id]
	if t == nil {
		t = &assignTable{segs: map[string]*segAssign{}}
		r.tables[id] = t
	}
	return t
}

// hashKey is the first KeyDepth path segments of an origin path below
// /hls/s/ ("42", "42/720p" or "42/720p/seg_7.ts").
func (r *Rewriter) hashKey(opath string) string {
	rest := strings.TrimPrefix(opath, "/hls/s/")
	n := 0
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			n++
			if n == r.p.KeyDepth {
				return rest[:i]
			}
		}
	}
	return rest
}

// assign returns the edge of the segment at opath in generation g,
// choosing and freezing it on first sight; loads are the current set's
// loads, updated by new choices, each of which books w requests (the
// playlist's viewers) on its edge.
func (r *Rewriter) assign(t *assignTable, opath string, g int64, set *edgeSet, loads []int64, w float64, target time.Duration, now time.Time) (rec, bool) {
	a := t.segs[opath]
	if a == nil {
		i := set.ring.PickWeighted(r.hashKey(opath), loads, r.p.BalanceFactor, units(w))
		if i < 0 {
			return rec{}, false
		}
		e := set.edges[i]
		a = &segAssign{recs: []rec{{gen: set.gen, name: e.Name, base: e.BaseURL}}}
		t.segs[opath] = a
		r.booked(i, e.Name, loads, w, target, now)
	}
	a.seen = now
	x := a.at(g)
	if g >= set.gen {
		if _, live := set.live[x.name]; !live && x.gen < set.gen {
			i := set.ring.PickWeighted(r.hashKey(opath), loads, r.p.BalanceFactor, units(w))
			if i < 0 {
				return x, true
			}
			e := set.edges[i]
			x = rec{gen: set.gen, name: e.Name, base: e.BaseURL}
			a.recs = append(a.recs, x)
			r.booked(i, e.Name, loads, w, target, now)
			r.m.reassigned.Inc()
		}
	}
	return x, true
}

// booked records a new freeze on edge i: its viewers' requests count in
// loads (for the rest of this rewrite) and in the book (for later ones).
func (r *Rewriter) booked(i int, name string, loads []int64, w float64, target time.Duration, now time.Time) {
	loads[i] += units(w)
	r.book.assign(name, w, target, now)
	r.m.assigned.WithLabelValues(name).Inc()
}

// LoadUnit is how many segment requests make one unit of load in the
// bounded-load rule. With single requests as units, HAProxy's bound
// (⌈c · (T+1) / n⌉) makes a lone viewer's second segment spill (1 is not
// below ⌈1.25 · 2 / 3⌉ = 1), so a quiet stream would hop between edges
// every segment; in units of LoadUnit requests, edges with a handful of
// viewers count as idle and a stream stays on its first edge until its
// audience is worth spreading.
const LoadUnit = 8

func units(requests float64) int64 { return int64(math.Round(requests / LoadUnit)) }
