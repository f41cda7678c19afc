package sched

import (
	"context"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/portier/portier/models/modelstest"
)

// TestStartWaitLeavesNoGoroutine: Start runs one loop however often it is
// called, and Wait returns once its ctx ended with nothing left running.
func TestStartWaitLeavesNoGoroutine(t *testing.T) {
	st := modelstest.SQLite(t)
	opts := goleak.IgnoreCurrent() // the store's own goroutines
	ctx, cancel := context.WithCancel(context.Background())
	sc := New(Params{Store: st, Logger: slog.New(slog.DiscardHandler)})
	sc.Start(ctx)
	sc.Start(ctx)
	sc.Kick()
	cancel()
	sc.Wait()
	goleak.VerifyNone(t, opts)
}
