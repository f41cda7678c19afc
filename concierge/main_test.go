package concierge

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// concierge stops its reconcile loop, long poll, heartbeat and supervisor
// client when Run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
