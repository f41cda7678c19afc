//go:build race

package hlssim

// raceEnabled: the race detector slows every goroutine 5-10x, so the
// simulations' timing claims (stalls, target durations) mean nothing
// under it; they run without it (the race detector still checks the
// simulator on a short run).
const raceEnabled = true
