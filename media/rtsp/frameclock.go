package rtsp

import "math"

// frameRates are the rates frameClock recognises, in order of preference
// when several fit.
var frameRates = [...]float64{25, 30, 50, 60, 24, 48, 30000.0 / 1001, 60000.0 / 1001, 24000.0 / 1001}

// frameClock turns the hub's millisecond video times back into exact
// 90 kHz RTP times. The hub rounds each frame's time to a millisecond, so
// 30 fps steps 2970 or 3060 ticks instead of 3000. When every frame since
// an origin lies within a millisecond of the grid of a common frame rate,
// a frame gets the grid's exact time; otherwise (a gap, a variable rate)
// the clock restarts from that frame's own time. Frames may come in any
// order (B-frames): the grid is indexed, not counted. Output never differs
// from the hub's time by more than a millisecond.
//
// A frameClock is used by one goroutine (the fan-out's pump).
type frameClock struct {
	started  bool
	originMs int64
	fits     [len(frameRates)]bool // rates on whose grid every frame since the origin lies
}

// ticks returns the 90 kHz time of a frame at ms.
func (c *frameClock) ticks(ms int64) int64 {
	if c.started {
		d := float64(ms - c.originMs)
		best := -1
		for i, r := range frameRates {
			if !c.fits[i] {
				continue
			}
			p := 1000 / r
			k := math.Round(d / p)
			if math.Abs(d-k*p) > 1+1e-9 {
				c.fits[i] = false
				continue
			}
			if best < 0 {
				best = i
			}
		}
		if best >= 0 {
			p := 90000 / frameRates[best]
			k := math.Round(d / (1000 / frameRates[best]))
			return c.originMs*90 + int64(math.Round(k*p))
		}
	}
	c.started, c.originMs = true, ms
	for i := range c.fits {
		c.fits[i] = true
	}
	return ms * 90
}
