//go:build !race

package hlssim

const raceEnabled = false
