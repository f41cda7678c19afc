package rtmp

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// component started here must stop in Close (or when its context ends).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
