package rtsp

import (
	"math"
	"testing"
)

// msOf is what the hub stores for frame k of a stream at rate fps that
// starts at t0 ms: the time rounded to a millisecond.
func msOf(t0 float64, fps float64, k int) int64 {
	return int64(math.Round(t0 + float64(k)*1000/fps))
}

func TestFrameClock(t *testing.T) {
	tests := []struct {
		name string
		fps  float64
		step int64 // exact ticks per frame
	}{
		{"25", 25, 3600},
		{"30", 30, 3000},
		{"60", 60, 1500},
		{"29.97", 30000.0 / 1001, 3003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c frameClock
			first := c.ticks(msOf(1000.4, tt.fps, 0))
			var irregular int
			for k := 1; k < 600; k++ {
				got := c.ticks(msOf(1000.4, tt.fps, k))
				if got != first+int64(k)*tt.step {
					// 29.97 runs on the 30 fps grid until that stops fitting.
					irregular++
				}
				if d := got - msOf(1000.4, tt.fps, k)*90; d < -90 || d > 90 {
					t.Fatalf("frame %d: %d ticks, %d from the hub's time", k, got, d)
				}
			}
			if irregular > 40 {
				t.Fatalf("%d of 600 frames off the exact grid", irregular)
			}
		})
	}
}

// B-frames (presentation order differs from decode order) stay on the
// grid; a jump to a time off every grid restarts the clock there.
func TestFrameClockBFramesAndJump(t *testing.T) {
	var c frameClock
	order := []int{0, 3, 1, 2, 6, 4, 5, 9, 7, 8}
	base := c.ticks(msOf(0, 30, 0))
	for _, k := range order[1:] {
		if got := c.ticks(msOf(0, 30, k)); got != base+int64(k)*3000 {
			t.Fatalf("frame %d: %d, want %d", k, got, base+int64(k)*3000)
		}
	}
	if got := c.ticks(5011); got != 5011*90 {
		t.Fatalf("after a jump: %d, want the hub's time %d", got, 5011*90)
	}
	if got := c.ticks(msOf(5011, 30, 1)); got != 5011*90+3000 {
		t.Fatalf("after a jump, next frame: %d", got)
	}
}
