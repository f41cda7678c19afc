//go:build race

package cluster

// raceEnabled: the cluster test skips under the race detector (its nodes
// are separate processes built without it, and the detector's slowdown of
// the forwarders would be measured as network delay); make test runs it
// without.
const raceEnabled = true
