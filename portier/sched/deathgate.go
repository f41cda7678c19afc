package sched

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DeathGate decides when this replica may declare nodes dead.
//
// A node is dead when its last heartbeat in the database is older than the
// alive window (nodewire.AliveWindow). That judgement is sound only if the
// nodes' heartbeats could be written all along: during a database outage
// every heartbeat fails, so when the database returns every node looks
// dead at once, and a reaper pass before the nodes' next heartbeats land
// would clear every stream, announce every node lost and reassign every
// task. The rule: after this replica saw the database fail, and after it
// started (the whole control plane may have been down, with the same
// effect), it declares no node dead until its database calls have
// succeeded without a break for a full alive window. By then every live
// node has had nodewire.AliveHeartbeats chances to heartbeat through some
// replica, so a node still stale is dead in fact. Each replica judges by
// its own calls: a replica cut from the database holds off while another
// that reaches it goes on reaping.
//
// Observe is fed with the result of the scheduler's own database calls
// (every PollInterval, so the gate sees the database return within that)
// and of the heartbeat writes this replica serves (which also catch a
// database that answers reads but refuses writes).
//
// Concurrency: mu guards the fields below it and is never held across
// anything but their reads and writes.
type DeathGate struct {
	window time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	failing bool      // the last observed call failed
	okSince time.Time // when the current run of successes began (or the start)
	outage  bool      // a failure was seen and its hold has not ended yet (for the log line)
}

// NewDeathGate returns a gate with the given alive window; it holds off
// for one window from now (a start counts as the database's return).
func NewDeathGate(window time.Duration, now func() time.Time, log *slog.Logger) *DeathGate {
	if log == nil {
		log = slog.Default()
	}
	return &DeathGate{window: window, now: now, log: log, okSince: now()}
}

// Observe records the result of a database call: nil is a success, any
// other error but a cancelled context a failure.
func (g *DeathGate) Observe(err error) {
	if errors.Is(err, context.Canceled) {
		return // the caller went away; says nothing of the database
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err != nil && !g.failing:
		g.failing, g.outage = true, true
		g.log.Warn("database calls fail: no node is declared dead until they succeed for an alive window", "err", err, "window", g.window)
	case err == nil && g.failing:
		g.failing = false
		g.okSince = now
		g.log.Info("database calls succeed again: nodes may be declared dead after an alive window of them", "window", g.window)
	}
}

// Hold reports whether declaring nodes dead is held off now, and for how
// much longer at least (a whole window while the database still fails).
func (g *DeathGate) Hold() (bool, time.Duration) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	left := g.window
	if !g.failing {
		left = g.window - now.Sub(g.okSince)
	}
	hold := left > 0
	if g.outage && !hold {
		g.outage = false
		g.log.Info("database up for an alive window: nodes are declared dead again when they miss their heartbeats")
	}
	return hold, max(left, 0)
}
