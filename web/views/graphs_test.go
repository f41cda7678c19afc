package views

import "testing"

func TestSparkPoints(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{[]float64{0, 10, 5}, "0.0,27.0 60.0,1.0 120.0,14.0"},
		{[]float64{0, 0}, "0.0,27.0 120.0,27.0"},
		{[]float64{3}, "0.0,1.0"},
	} {
		if got := sparkPoints(c.in); got != c.want {
			t.Errorf("sparkPoints(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
