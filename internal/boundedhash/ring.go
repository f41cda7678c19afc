// Package boundedhash is a weighted consistent-hash ring with bounded
// loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
// Bounded Loads"; HAProxy's hash-balance-factor): a key goes to the first
// member clockwise from its hash whose load is under its bound, so a hot key
// stays on one member until that member is full and then spills to the
// next member on the ring, not to a random one.
//
// The bound of member i, of weight w_i in a ring of total weight W, when
// the loads add up to T, is ⌈c · (T+1) · w_i / W⌉; with equal weights that
// is HAProxy's ⌈c · (T+1) / n⌉. A member is eligible while its load is
// below its bound. Since the bounds add up to at least c · (T+1) > T for
// c ≥ 1, some member is always eligible.
//
// A Ring is immutable once built and safe for concurrent use; loads are
// passed to each call, so the caller owns them and their locking.
package boundedhash

import (
	"math"
	"sort"
)

// Member is one node of the ring.
type Member struct {
	ID string
	// Weight is the member's capacity in units (see PointsPerWeight); its
	// share of the load is Weight over the ring's total. ≤ 0 counts as 1.
	Weight float64
}

// PointsPerWeight is how many ring points a member gets per unit of
// weight (at most 16 units count). More points even out the arcs (with
// 160, arc sizes vary by about ±8 %). Give weights in units of a typical
// member (the rewriter uses Gbit/s of egress capacity).
const PointsPerWeight = 160

type point struct {
	hash   uint64
	member int32
}

// Ring is an immutable weighted hash ring.
type Ring struct {
	members []Member
	weights []float64
	total   float64
	points  []point
}

// New builds a ring of members (IDs must be distinct; the order does not
// matter: the ring depends only on IDs and weights).
func New(members []Member) *Ring {
	r := &Ring{members: append([]Member(nil), members...)}
	if len(members) == 0 {
		return r
	}
	r.weights = make([]float64, len(members))
	for i, m := range members {
		w := m.Weight
		if w <= 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			w = 1
		}
		r.weights[i] = w
		r.total += w
	}
	for i, m := range members {
		// Points depend on the member's own weight only, so adding or
		// removing a member leaves every other member's points in place.
		n := int(math.Round(PointsPerWeight * r.weights[i]))
		n = min(max(n, 1), 16*PointsPerWeight)
		for j := range n {
			r.points = append(r.points, point{hash: hashPoint(m.ID, j), member: int32(i)})
		}
	}
	sort.Slice(r.points, func(a, b int) bool {
		pa, pb := r.points[a], r.points[b]
		if pa.hash != pb.hash {
			return pa.hash < pb.hash
		}
		return r.members[pa.member].ID < r.members[pb.member].ID
	})
	return r
}

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Member returns member i.
func (r *Ring) Member(i int) Member { return r.members[i] }

// Index returns the index of the member with id, or -1.
func (r *Ring) Index(id string) int {
	for i, m := range r.members {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// Walk calls fn with each member index once, in ring order from key's
// hash, until fn returns false.
func (r *Ring) Walk(key string, fn func(i int) bool) {
	n := len(r.members)
	if n == 0 {
		return
	}
	h := Hash(key)
	start := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	var seenSmall uint64 // members < 64
	var seen map[int32]bool
	found := 0
	for k := 0; k < len(r.points) && found < n; k++ {
		m := r.points[(start+k)%len(r.points)].member
		if m < 64 {
			if seenSmall&(1<<m) != 0 {
				continue
			}
			seenSmall |= 1 << m
		} else {
			if seen == nil {
				seen = map[int32]bool{}
			}
			if seen[m] {
				continue
			}
			seen[m] = true
		}
		found++
		if !fn(int(m)) {
			return
		}
	}
}

// Order returns the members' indexes in ring order from key's hash.
func (r *Ring) Order(key string) []int {
	out := make([]int, 0, len(r.members))
	r.Walk(key, func(i int) bool { out = append(out, i); return true })
	return out
}

// Bound is the load bound of member i when the loads add up to total,
// with balance factor c (values below 1 count as 1; +Inf turns the bound
// off).
func (r *Ring) Bound(i int, total int64, c float64) int64 {
	c = max(c, 1)
	b := math.Ceil(c * float64(total+1) * r.weights[i] / r.total)
	if b >= math.MaxInt64/2 || math.IsNaN(b) { // c = +Inf: plain consistent hashing
		return math.MaxInt64
	}
	return int64(b)
}

// Pick returns the member for key: the first in ring order whose load is
// below its bound. loads[i] is member i's load (len(loads) == Len()).
// It returns -1 on an empty ring.
func (r *Ring) Pick(key string, loads []int64, c float64) int {
	var total int64
	for _, l := range loads {
		total += l
	}
	pick := -1
	r.Walk(key, func(i int) bool {
		if loads[i] < r.Bound(i, total, c) {
			pick = i
			return false
		}
		return true
	})
	return pick
}

// Hash is the ring's 64-bit hash of a key: FNV-1a with a splitmix64
// finish (FNV alone clusters similar short keys). It is stable across
// processes, so every control-plane replica builds the same ring.
func Hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

func hashPoint(id string, j int) uint64 {
	return mix(Hash(id) ^ (uint64(j)+1)*0x9e3779b97f4a7c15)
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// PickWeighted is Pick for an item that brings w units of load at once
// (a segment frozen on an edge brings one request per viewer): the first
// member in ring order that stays within its bound with the item,
// loads[i] + w ≤ ⌈c · (T+w) · w_i / W⌉; when none can take it whole, the
// first whose load is below its bound (Pick). With w = 1 it is Pick.
func (r *Ring) PickWeighted(key string, loads []int64, c float64, w int64) int {
	if w <= 1 {
		return r.Pick(key, loads, c)
	}
	var total int64
	for _, l := range loads {
		total += l
	}
	pick := -1
	r.Walk(key, func(i int) bool {
		if loads[i]+w <= r.Bound(i, total+w-1, c) {
			pick = i
			return false
		}
		return true
	})
	if pick < 0 {
		return r.Pick(key, loads, c)
	}
	return pick
}
