package portier

import (
	"context"
	"log/slog"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/live"
	"github.com/portier/portier/portier/sched"
)

// The writes a user can make go through core (one function per action:
// validate, write, audit, after-commit step); the REST and UI handlers only
// translate input and errors. liveHooks gives core the after-commit steps
// of the live state.
type liveHooks struct {
	lv    *live.State
	sched *sched.Scheduler
	log   *slog.Logger
}

var _ core.Live = liveHooks{}

// Kick wakes the scheduler.
func (h liveHooks) Kick() { h.sched.Kick() }

// AliveSince is live state's liveness rule.
func (h liveHooks) AliveSince() time.Time { return h.lv.AliveSince() }

// RestartTask restarts a task through the scheduler.
func (h liveHooks) RestartTask(ctx context.Context, id int64, reason string, inTx func(tx *models.Store, out *models.Task) error) (*models.Task, error) {
	return h.sched.RestartTask(ctx, id, reason, inTx)
}

func (h liveHooks) StreamChanged(ctx context.Context, id int64) {
	if err := h.lv.StreamChanged(ctx, id); err != nil {
		h.log.Error("reconcile tasks after stream change", "stream", id, "err", err)
	}
}

func (h liveHooks) StreamOffline(ctx context.Context, id int64, why string) {
	h.lv.StreamOffline(ctx, id, why)
}

func (h liveHooks) TaskConfigChanged(ctx context.Context, id int64) {
	if err := h.lv.ConfigChanged(ctx, id); err != nil {
		h.log.Error("reconcile task after config change", "config", id, "err", err)
	}
}

func (h liveHooks) TaskConfigDeleting(ctx context.Context, id int64) error {
	return h.lv.ConfigDeleting(ctx, id)
}
