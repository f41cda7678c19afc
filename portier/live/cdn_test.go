package live

import "testing"

func TestDesiredEdges(t *testing.T) {
	for _, c := range []struct {
		egress, capSum float64
		live, want     int
	}{
		{0, 0, 0, 1},           // nothing live: one edge
		{5e9, 0, 3, 3},         // no capacity known: keep what runs
		{0, 3e9, 3, 1},         // idle: one edge
		{2.1e9, 3e9, 3, 3},     // exactly 70 % of three
		{2.1e9 + 1, 3e9, 3, 4}, // just over
		{10e9, 2e9, 2, 15},     // far over: 10 / 0.7
	} {
		if got := DesiredEdges(c.egress, c.capSum, c.live); got != c.want {
			t.Errorf("DesiredEdges(%v, %v, %d) = %d, want %d", c.egress, c.capSum, c.live, got, c.want)
		}
	}
}
