package webhook_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: Close
// must wait for every goroutine the dispatcher started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
