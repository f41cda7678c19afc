package boundedhash

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randomRing(rng *rand.Rand, n int, weighted bool) *Ring {
	ms := make([]Member, n)
	for i := range ms {
		w := 1.0
		if weighted {
			w = float64(1 + rng.IntN(4))
		}
		ms[i] = Member{ID: fmt.Sprintf("edge-%d-%d", i, rng.IntN(1000)), Weight: w}
	}
	return New(ms)
}

// TestBoundHolds: whatever the background loads and the mix of hot and
// cold keys, assigning one request at a time with Pick never takes a
// member above its bound at the moment of the assignment, so no member
// ends above ⌈c · (T+1) · w/W⌉ (with equal weights, ⌈c · average⌉ of the
// final total plus one).
func TestBoundHolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(12)
		r := randomRing(rng, n, trial%2 == 1)
		c := 1 + rng.Float64()
		loads := make([]int64, n)
		for i := range loads {
			loads[i] = int64(rng.IntN(5)) // small background, always within bound
		}
		keys := 1 + rng.IntN(20)
		for range 500 {
			k := fmt.Sprintf("/hls/s/%d", rng.IntN(keys)*rng.IntN(2)) // half the requests on key 0: hot
			var total int64
			for _, l := range loads {
				total += l
			}
			i := r.Pick(k, loads, c)
			if i < 0 {
				t.Fatalf("trial %d: no eligible member", trial)
			}
			if loads[i]+1 > r.Bound(i, total, c) {
				t.Fatalf("trial %d: member %d at %d+1 over its bound %d", trial, i, loads[i], r.Bound(i, total, c))
			}
			loads[i]++
		}
		if trial%2 == 0 { // equal weights: the HAProxy statement
			var total int64
			for _, l := range loads {
				total += l
			}
			limit := int64(math.Ceil(c * float64(total+1) / float64(n)))
			for i, l := range loads {
				if l > limit {
					t.Fatalf("trial %d: member %d has %d > ⌈c·(T+1)/n⌉ = %d", trial, i, l, limit)
				}
			}
		}
	}
}

// TestHotKeySpillsInRingOrder: the requests of one hot key fill the first
// member of its ring order up to the bound, then the next, and so on: a
// member is used only when every member before it in the key's order is
// full, so the key uses the fewest members the bound allows.
func TestHotKeySpillsInRingOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		n := 2 + rng.IntN(10)
		r := randomRing(rng, n, trial%2 == 1)
		c := 1 + rng.Float64()
		loads := make([]int64, n)
		for i := range loads {
			loads[i] = int64(rng.IntN(20))
		}
		key := fmt.Sprintf("hot-%d", trial)
		order := r.Order(key)
		pos := make([]int, n)
		for p, i := range order {
			pos[i] = p
		}
		for range 1 + rng.IntN(400) {
			var total int64
			for _, l := range loads {
				total += l
			}
			i := r.Pick(key, loads, c)
			for _, j := range order[:pos[i]] {
				if loads[j] < r.Bound(j, total, c) {
					t.Fatalf("trial %d: picked member %d (position %d) while member %d before it had room (%d < %d)",
						trial, i, pos[i], j, loads[j], r.Bound(j, total, c))
				}
			}
			loads[i]++
		}
	}
}

// TestHotKeyAloneUsesFewMembers: one key's requests on an idle ring of n
// equal members with c use exactly as many members as the bound forces:
// the first takes ⌈c(T+1)/n⌉ while it can, and so on.
func TestHotKeyAloneUsesFewMembers(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10} {
		for _, c := range []float64{1.25, 1.5, 2} {
			r := New(members(n))
			loads := make([]int64, n)
			used := map[int]bool{}
			for range 1000 {
				i := r.Pick("/hls/s/1", loads, c)
				used[i] = true
				loads[i]++
			}
			// Each member can take at most ⌈c·1001/n⌉; the fewest members
			// that can hold 1000 requests at that bound:
			bound := math.Ceil(c * 1001 / float64(n))
			want := int(math.Ceil(1000 / bound))
			if len(used) != want {
				t.Errorf("n=%d c=%.2f: a hot key used %d members, want %d (bound %v), loads %v", n, c, len(used), want, bound, loads)
			}
		}
	}
}

func members(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("edge-%d", i), Weight: 1}
	}
	return ms
}

// TestStableUnderMembershipChange: without load pressure, removing a
// member moves only its keys, and adding one moves keys only to it; the
// share moved is about 1/n.
func TestStableUnderMembershipChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 50 {
		n := 2 + rng.IntN(10)
		ms := members(n + 1)
		for i := range ms {
			ms[i].ID = fmt.Sprintf("e%d-%d", trial, i)
			ms[i].Weight = float64(1 + rng.IntN(3))
		}
		small, big := New(ms[:n]), New(ms)
		inf := math.Inf(1)
		zero := func(r *Ring) []int64 { return make([]int64, r.Len()) }
		moved := 0
		const keys = 4000
		for k := range keys {
			key := fmt.Sprintf("/hls/s/%d/720p", k)
			a := small.Member(small.Pick(key, zero(small), inf)).ID
			b := big.Member(big.Pick(key, zero(big), inf)).ID
			if a != b {
				moved++
				if b != ms[n].ID {
					t.Fatalf("trial %d: adding %s moved %s from %s to %s", trial, ms[n].ID, key, a, b)
				}
			}
		}
		share := ms[n].Weight / (New(ms).total)
		if got := float64(moved) / keys; got > share*1.6+0.02 {
			t.Errorf("trial %d: adding a member of weight share %.3f moved %.3f of the keys", trial, share, got)
		}
	}
}

// TestWeights: keys spread in proportion to weights.
func TestWeights(t *testing.T) {
	r := New([]Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 1}})
	count := map[string]int{}
	for k := range 20000 {
		count[r.Member(r.Pick(fmt.Sprint("k", k), make([]int64, 3), math.Inf(1))).ID]++
	}
	if b := float64(count["b"]) / 20000; b < 0.42 || b > 0.58 {
		t.Fatalf("weight 2 of 4 got share %.3f (%v)", b, count)
	}
}

// TestEmpty: an empty ring picks nothing.
func TestEmpty(t *testing.T) {
	if New(nil).Pick("k", nil, 1.25) != -1 {
		t.Fatal("empty ring picked a member")
	}
}

func BenchmarkPick(b *testing.B) {
	r := New(members(10))
	loads := make([]int64, 10)
	for i := 0; b.Loop(); i++ {
		loads[r.Pick("/hls/s/42/720p", loads, 1.25)]++
	}
}

// TestPickWeighted: items of weight w never take a member past its bound
// when some member can take them whole, and spill in ring order.
func TestPickWeighted(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		n := 2 + rng.IntN(8)
		r := randomRing(rng, n, trial%2 == 1)
		c := 1 + rng.Float64()
		loads := make([]int64, n)
		for range 300 {
			w := int64(1 + rng.IntN(50))
			key := fmt.Sprintf("k%d", rng.IntN(5))
			var total int64
			for _, l := range loads {
				total += l
			}
			i := r.PickWeighted(key, loads, c, w)
			fits := func(j int) bool { return loads[j]+w <= r.Bound(j, total+w-1, c) }
			anyFits := false
			for j := range loads {
				anyFits = anyFits || fits(j)
			}
			if anyFits && !fits(i) {
				t.Fatalf("trial %d: picked %d that cannot take %d (load %d, bound %d) while another could", trial, i, w, loads[i], r.Bound(i, total+w-1, c))
			}
			for _, j := range r.Order(key) {
				if j == i {
					break
				}
				if anyFits && fits(j) {
					t.Fatalf("trial %d: skipped member %d that could take the item", trial, j)
				}
			}
			loads[i] += w
		}
	}
}
