// Package rendezvous picks members for keys by rendezvous (highest random
// weight) hashing: edges pick the origin of a stream path, stable when
// origins come and go.
package rendezvous

import (
	"hash/fnv"
	"slices"
)

// Rank orders members by rendezvous (highest random weight) hashing of key:
// every caller with the same member set gets the same order, and removing a
// member moves only the keys it ranked first. The first element is the
// chosen member; the rest are the fallbacks in order. Duplicates are kept
// once; the input is not modified.
func Rank(key string, members []string) []string {
	out := slices.Clone(members)
	slices.Sort(out)
	out = slices.Compact(out)
	weights := make(map[string]uint64, len(out))
	for _, m := range out {
		weights[m] = weight(key, m)
	}
	slices.SortStableFunc(out, func(a, b string) int {
		wa, wb := weights[a], weights[b]
		switch {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return 0
	})
	return out
}

// Pick is the first member of Rank(key, members), or "" when members is empty.
func Pick(key string, members []string) string {
	best, bestW := "", uint64(0)
	for _, m := range members {
		w := weight(key, m)
		if best == "" || w > bestW || (w == bestW && m < best) {
			best, bestW = m, w
		}
	}
	return best
}

// weight hashes (member, key) with FNV-1a and a splitmix64 finaliser, which
// spreads FNV's weak low bits so that similar names get unrelated weights.
func weight(key, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
