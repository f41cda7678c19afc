package rendezvous

import (
	"fmt"
	"slices"
	"testing"
)

func TestPickStableUnderRemoval(t *testing.T) {
	members := []string{"origin-1", "origin-2", "origin-3", "origin-4", "origin-5"}
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("live/stream-%d", i)
	}
	before := map[string]string{}
	count := map[string]int{}
	for _, k := range keys {
		before[k] = Pick(k, members)
		count[before[k]]++
	}
	for _, m := range members {
		// Balance: each of 5 members gets 20% ± 5% of 2000 keys.
		if c := count[m]; c < 300 || c > 500 {
			t.Errorf("member %s got %d of %d keys; want about 400", m, c, len(keys))
		}
	}
	for _, removed := range members {
		rest := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == removed })
		moved := 0
		for _, k := range keys {
			after := Pick(k, rest)
			if before[k] != removed && after != before[k] {
				t.Fatalf("removing %s moved %s from %s to %s", removed, k, before[k], after)
			}
			if before[k] == removed {
				moved++
				if after == removed {
					t.Fatalf("key %s still on removed member", k)
				}
			}
		}
		if moved != count[removed] {
			t.Fatalf("moved %d keys, want %d", moved, count[removed])
		}
	}
}

func TestPickStableUnderAddition(t *testing.T) {
	members := []string{"a:1935", "b:1935", "c:1935"}
	grown := append(slices.Clone(members), "d:1935")
	toNew := 0
	for i := range 1000 {
		k := fmt.Sprintf("live/s%d", i)
		was, now := Pick(k, members), Pick(k, grown)
		if now != was && now != "d:1935" {
			t.Fatalf("adding d moved %s from %s to %s", k, was, now)
		}
		if now == "d:1935" {
			toNew++
		}
	}
	// The new member takes its share (a quarter of 1000 keys, ± 10%), so a
	// Pick that never chose it (or chose it for everything) fails.
	if toNew < 150 || toNew > 350 {
		t.Fatalf("the new member got %d of 1000 keys; want about 250", toNew)
	}
}

func TestRank(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		members []string
		wantLen int
	}{
		{"empty", "live/x", nil, 0},
		{"one", "live/x", []string{"o1"}, 1},
		{"duplicates kept once", "live/x", []string{"o1", "o2", "o1"}, 2},
		{"three", "live/y", []string{"o3", "o1", "o2"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Rank(tc.key, tc.members)
			if len(r) != tc.wantLen {
				t.Fatalf("Rank = %v, want %d members", r, tc.wantLen)
			}
			if tc.wantLen > 0 && r[0] != Pick(tc.key, tc.members) {
				t.Fatalf("Rank[0] = %s, Pick = %s", r[0], Pick(tc.key, tc.members))
			}
			// Order independent of input order.
			rev := slices.Clone(tc.members)
			slices.Reverse(rev)
			if got := Rank(tc.key, rev); !slices.Equal(got, r) {
				t.Fatalf("Rank depends on input order: %v vs %v", got, r)
			}
		})
	}
	if Pick("k", nil) != "" {
		t.Fatal("Pick of no members must be empty")
	}
}
