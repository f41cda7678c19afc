//go:build race

package e2e

// raceEnabled: the race detector slows the test process 5-10x, which
// breaks the timing claims of the simulated viewers (they run in this
// process); make test runs those tests again without it.
const raceEnabled = true
