// Package cluster runs Portier as a cluster of processes, each node in its
// own network namespace joined by a bridge, and breaks it on purpose: kill
// -9 of control-plane replicas, origins and concierges, a partition, link
// delay and loss. It needs root (network namespaces); it skips without,
// unless CI=true.
package cluster

import (
	"os"
	"testing"

	"github.com/portier/portier/tests/peers"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweepStale()
	}
	code := m.Run()
	peers.RemovePortierBinary()
	os.Exit(code)
}
