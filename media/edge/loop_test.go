package edge

import (
	"errors"
	"testing"
	"time"
)

func TestRateGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		wall time.Duration // since t0
		dts  int64         // ms
	}
	// feed returns the steps of a stream at rate× real time (40 ms frames)
	// from wall time from to to, starting at media time dts0.
	feed := func(from, to time.Duration, dts0 int64, rate float64) []step {
		var out []step
		for w := from; w < to; w += 40 * time.Millisecond {
			out = append(out, step{w, dts0 + int64(float64((w-from).Milliseconds())*rate)})
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	// The GOP cache: 4 s of media within the first 50 ms.
	burst := feed(0, 50*time.Millisecond, 0, 80)
	for _, tc := range []struct {
		name  string
		steps []step
		loop  bool
	}{
		{"real time", feed(0, 10*time.Second, 0, 1), false},
		{"GOP burst, then real time", cat(burst, feed(50*time.Millisecond, 10*time.Second, 4000, 1)), false},
		{"3x real time (catching up)", feed(0, 10*time.Second, 0, 3), false},
		{"5x for one second only", cat(feed(0, 3*time.Second, 0, 1), feed(3*time.Second, 4*time.Second, 3000, 5), feed(4*time.Second, 10*time.Second, 8000, 1)), false},
		{"5x sustained", feed(0, 10*time.Second, 0, 5), true},
		{"timestamp jumps (encoder restarts)", cat(feed(0, 3*time.Second, 0, 1), feed(3*time.Second, 6*time.Second, 3_600_000, 1), feed(6*time.Second, 10*time.Second, 100, 1)), false},
		{"burst, then 10x", cat(burst, feed(50*time.Millisecond, 10*time.Second, 4000, 10)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRateGuard(DefaultMaxRate, DefaultRateWindow, DefaultRateGrace)
			var err error
			var at time.Duration
			for _, s := range tc.steps {
				if err = g.observe(t0.Add(s.wall), s.dts); err != nil {
					at = s.wall
					break
				}
			}
			if (err != nil) != tc.loop || (err != nil && !errors.Is(err, errLoop)) {
				t.Fatalf("err = %v, want loop %v", err, tc.loop)
			}
			if err != nil && at > DefaultRateGrace+DefaultRateWindow+100*time.Millisecond {
				t.Fatalf("loop found after %v, want by %v", at, DefaultRateGrace+DefaultRateWindow)
			}
		})
	}
}

func TestIsSelf(t *testing.T) {
	e := New(Params{})
	e.SetSelf("0.0.0.0:1935", "relay-1.example:1935", "127.0.0.1:19350")
	for addr, want := range map[string]bool{
		"127.0.0.1:1935":       true,  // the wildcard listener, reached over loopback
		"localhost:1935":       true,  // the same by name
		"relay-1.example:1935": true,  // advertised
		"127.0.0.1:19350":      true,  // exact
		"localhost:19350":      true,  // loopback names are one host
		"127.0.0.1:1936":       false, // another port
		"192.0.2.7:1935":       false, // another host (TEST-NET-1, not local)
		"origin-1:1935":        false,
	} {
		if got := e.IsSelf(addr); got != want {
			t.Errorf("IsSelf(%q) = %v, want %v", addr, got, want)
		}
	}
}
