// Package core holds the control plane's write paths: one function per
// change a user can make (create a stream, rotate its key, update a task
// config, …). Each validates, writes and audits in one transaction and then
// runs the after-commit step (reconciling tasks, stopping the tasks of a
// stream that went offline). The REST API, the web UI and the CLI call these
// functions and only translate their input and errors, so the three can no
// longer disagree on what a change validates or records.
//
// User, password and token writes live one layer down, in models
// (models.AddUser, models.ChangeUser, models.IssueToken), because they need
// no live state and the offline CLI calls them without a control plane;
// Core re-exports them so every surface calls the same names here.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
)

// Live is what the write paths need of the control plane's live state: the
// after-commit steps. Failures there are logged by the implementation: the
// change itself is committed, and the scheduler's periodic reconciliation
// catches up.
type Live interface {
	// StreamChanged brings a stream's tasks in line after a committed change.
	StreamChanged(ctx context.Context, streamID int64)
	// StreamOffline marks a stream offline and stops its tasks.
	StreamOffline(ctx context.Context, streamID int64, why string)
	// TaskConfigChanged compiles, replaces or stops a config's task.
	TaskConfigChanged(ctx context.Context, cfgID int64)
	// TaskConfigDeleting stops a config's task before the config goes.
	TaskConfigDeleting(ctx context.Context, cfgID int64) error
	// RestartTask gives a task a new epoch on its node; inTx runs in the
	// same transaction (the audit event). models.ErrInUse: the task is not
	// meant to run now.
	RestartTask(ctx context.Context, taskID int64, reason string, inTx func(tx *models.Store, out *models.Task) error) (*models.Task, error)
	// Kick wakes the scheduler (tasks were handed back).
	Kick()
	// AliveSince is when a node must have heartbeated last to be alive.
	AliveSince() time.Time
}

// Params configures a Core.
type Params struct {
	Store *models.Store
	// Live runs the after-commit steps; nil runs none (offline tools).
	Live   Live
	Logger *slog.Logger
	// Now is the clock of audit event times (default time.Now).
	Now func() time.Time
	// Webhooks makes test deliveries (portier/webhook.Dispatcher); nil:
	// SendTestWebhook fails.
	Webhooks WebhookTester
}

// Core is the set of write paths over one store.
type Core struct {
	store *models.Store
	live  Live
	log   *slog.Logger
	now   func() time.Time
	hooks WebhookTester
}

// New builds a Core.
func New(p Params) *Core {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Live == nil {
		p.Live = noLive{}
	}
	return &Core{store: p.Store, live: p.Live, log: p.Logger, now: p.Now, hooks: p.Webhooks}
}

// Actor is who makes a change: the audit events name them.
type Actor = models.Actor

// ConflictError is a write refused because a unique name is taken; it
// names the field and wraps models.ErrConflict.
type ConflictError struct {
	Field   string
	Message string
}

func (e *ConflictError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, models.ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return models.ErrConflict }

func conflict(err error, field, format string, args ...any) error {
	if errors.Is(err, models.ErrConflict) {
		return &ConflictError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	return err
}

// FieldErrors lists the field errors in err (one, or several joined by
// errors.Join), so a form can show each beside its field.
func FieldErrors(err error) []*models.SpecError {
	var out []*models.SpecError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if se, ok := e.(*models.SpecError); ok {
			out = append(out, se)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		walk(errors.Unwrap(e))
	}
	walk(err)
	return out
}

// checkNames refuses the names that break models.NameRule, all at once.
func checkNames(fields ...string) error {
	var errs []error
	for i := 0; i+1 < len(fields); i += 2 {
		if !models.ValidName(fields[i+1]) {
			errs = append(errs, models.NameError(fields[i]))
		}
	}
	return errors.Join(errs...)
}

// event builds an audit event of a change by.
func (c *Core) event(by Actor, action, object string, details any) *models.AuditEvent {
	ev := &models.AuditEvent{Actor: by.Name, Action: action, Object: object, Addr: by.Addr}
	if details != nil {
		ev.Details = models.MustJSON(details)
	}
	return ev
}

type noLive struct{}

func (noLive) StreamChanged(context.Context, int64)         {}
func (noLive) StreamOffline(context.Context, int64, string) {}
func (noLive) TaskConfigChanged(context.Context, int64)     {}
func (noLive) TaskConfigDeleting(context.Context, int64) error {
	return nil
}
func (noLive) Kick() {}
func (noLive) AliveSince() time.Time {
	return time.Now().Add(-nodewire.AliveWindow(nodewire.DefaultHeartbeat))
}
func (noLive) RestartTask(context.Context, int64, string, func(*models.Store, *models.Task) error) (*models.Task, error) {
	return nil, errors.New("core: no scheduler to restart tasks")
}
