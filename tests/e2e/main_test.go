package e2e

import (
	"os"
	"testing"

	"github.com/portier/portier/tests/peers"
)

// TestMain removes the portier binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	peers.RemovePortierBinary()
	os.Exit(code)
}
