// Package cluster runs Portier as a cluster of processes, each node in its
// own network namespace joined by a bridge, on a Postgres of its own, with
// RTMP players, restream, record and HLS tasks and simulated HLS viewers,
// and breaks it on purpose: kill -9 of control-plane replicas, origins and
// concierges, partitions, link delay and loss, a Postgres crash. It needs
// root (network namespaces) and /usr/lib/postgresql/*/bin; it skips
// without, unless CI=true.
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
