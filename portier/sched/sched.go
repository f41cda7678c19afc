// Package sched places the control plane's tasks on concierges, renews and
// expires their leases, and wakes the concierges' long polls when their
// assignments change. It is the bottom of the control plane: it imports the
// store and the wire types, nothing above it.
package sched

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
)

// The scheduler places pending tasks on concierges (placeTasks), renews and
// expires leases, and wakes the concierges' long polls when assignments
// change. Placement and leases live in the database (models/tasks_sched.go),
// so any replica may run it; on Postgres several replicas serialise
// placement with an advisory lock and claim rows with SKIP LOCKED.
//
// Changes made by this process (placement, lease expiry, a restart, a
// stream going live or offline) wake its long polls at once and, on
// Postgres, NOTIFY the other replicas, whose listeners wake theirs at once
// too. As the fallback for a lost notification or a change made outside
// any replica, a cheap change stamp of the tasks table is polled every
// pollInterval, so a long poll wakes within that time in any case.
//
// With no active task (the last stamp counted none) the timed placement
// rounds and lease expiry are skipped: there is nothing to place and no
// lease to expire, and a new task changes the stamp, which starts a round
// at the next poll (or at once, with the Kick of the code that made it).
// An idle control plane then makes one cheap query per poll interval.

const (
	placeInterval = 250 * time.Millisecond
	// PollInterval is the default change-stamp poll (Params.PollEvery).
	PollInterval = 250 * time.Millisecond
	placeBatch   = 1000
)

// Params configures a Scheduler.
type Params struct {
	Store *models.Store
	// Heartbeat is the nodes' heartbeat interval (default
	// nodewire.DefaultHeartbeat); a lease lasts nodewire.Lease(Heartbeat).
	Heartbeat time.Duration
	// ClusterToken signs the HLS tasks' credentials (internal/hlscred).
	ClusterToken string
	Logger       *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// PollEvery is the change-stamp poll, the fallback when a notification
	// is lost (default PollInterval).
	PollEvery time.Duration
}

// Scheduler is one replica's scheduler state. Concurrency: mu guards wake
// only and is never held across I/O or a channel send; the run loop is the
// only writer of stamp.
type Scheduler struct {
	st    *models.Store
	log   *slog.Logger
	now   func() time.Time
	token string
	lease time.Duration
	alive time.Duration // nodewire.AliveWindow: when a node is dead
	gate  *DeathGate    // whether this replica may declare nodes dead now

	mu   sync.Mutex
	wake chan struct{} // closed (and replaced) whenever any assignment may have changed
	// nodeWake holds a channel per concierge waiting in a long poll, closed
	// (and removed) when that concierge's assignment changed: placement
	// wakes only the concierges it gave tasks to.
	nodeWake map[string]chan struct{}

	kick  chan struct{}
	stamp string
	once  sync.Once
	wg    sync.WaitGroup // the goroutines of Start
	m     schedMetrics

	// Multi-replica wake-ups (Postgres LISTEN/NOTIFY): id tells this
	// replica's notifications apart, notify asks the notifier goroutine to
	// send one (coalesced), pollEvery is the change-stamp poll, the fallback
	// when a notification is lost.
	id        string
	notify    chan struct{}
	pollEvery time.Duration
	listening atomic.Bool
}

// New builds a Scheduler; Start runs it.
func New(p Params) *Scheduler {
	if p.Heartbeat <= 0 {
		p.Heartbeat = nodewire.DefaultHeartbeat
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.PollEvery <= 0 {
		p.PollEvery = PollInterval
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	sc := &Scheduler{st: p.Store, log: p.Logger.With("component", "scheduler"), now: p.Now, token: p.ClusterToken,
		lease: nodewire.Lease(p.Heartbeat), alive: nodewire.AliveWindow(p.Heartbeat), wake: make(chan struct{}), nodeWake: map[string]chan struct{}{}, kick: make(chan struct{}, 1),
		m: newSchedMetrics(), id: hex.EncodeToString(id[:]), notify: make(chan struct{}, 1), pollEvery: p.PollEvery}
	sc.gate = NewDeathGate(sc.alive, p.Now, sc.log)
	return sc
}

// Lease is how long an assignment lives without a heartbeat.
func (sc *Scheduler) Lease() time.Duration { return sc.lease }

// Now is the scheduler's clock, in UTC.
func (sc *Scheduler) Now() time.Time { return sc.now().UTC() }

// Listening reports whether the Postgres listener is connected.
func (sc *Scheduler) Listening() bool { return sc.listening.Load() }

// SetPollEvery sets the change-stamp poll interval; call it before Start
// (tests of the notification fallback use it).
func (sc *Scheduler) SetPollEvery(d time.Duration) { sc.pollEvery = d }

// DBResult feeds the death gate with the result of a database call made
// for a node (a heartbeat write): nil, or the error.
func (sc *Scheduler) DBResult(err error) { sc.gate.Observe(err) }

// DeathsHeldOff reports whether this replica must not declare nodes dead
// now (see DeathGate): the reaper and lease expiry ask it.
func (sc *Scheduler) DeathsHeldOff() bool {
	hold, _ := sc.gate.Hold()
	return hold
}

// StaleReport counts a concierge report refused for its stale epoch.
func (sc *Scheduler) StaleReport() { sc.m.staleEpoch.Inc() }

// Kick asks for a placement round now and wakes waiting concierges (after
// a restart, a stop, a drain: changes to assigned tasks). It never blocks.
func (sc *Scheduler) Kick() {
	sc.KickPlacement()
	sc.changed()
}

// KickPlacement asks for a placement round now without waking anyone: for
// new pending tasks, which are in no concierge's assignment until placed
// (placement then wakes the concierges that got them). It never blocks.
func (sc *Scheduler) KickPlacement() {
	select {
	case sc.kick <- struct{}{}:
	default:
	}
}

// changed wakes this replica's long polls and, on Postgres, the other
// replicas' (NOTIFY). For changes made by this process.
func (sc *Scheduler) changed() {
	sc.broadcast()
	sc.notifyReplicas()
}

// changedNodes is changed for changes to the assignments of nodes only:
// here only their long polls wake; other replicas wake all of theirs.
func (sc *Scheduler) changedNodes(nodes []string) {
	sc.mu.Lock()
	for _, n := range nodes {
		if ch, ok := sc.nodeWake[n]; ok {
			close(ch)
			delete(sc.nodeWake, n)
		}
	}
	sc.mu.Unlock()
	sc.notifyReplicas()
}

func (sc *Scheduler) notifyReplicas() {
	select {
	case sc.notify <- struct{}{}:
	default:
	}
}

// RestartTask restarts a task: back to pending with epoch+1 (fencing its
// current runner), placed again at once. For the write paths (portier/core);
// audit (if not nil) runs in the same transaction as the restart.
func (sc *Scheduler) RestartTask(ctx context.Context, id int64, reason string, audit func(tx *models.Store, t *models.Task) error) (*models.Task, error) {
	var out *models.Task
	err := sc.st.Tx(ctx, func(tx *models.Store) error {
		t, err := tx.RequestTaskRestart(ctx, id, reason)
		if err != nil {
			return err
		}
		out = t
		if audit != nil {
			return audit(tx, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sc.Kick()
	return out, nil
}

func (sc *Scheduler) broadcast() {
	sc.mu.Lock()
	close(sc.wake)
	sc.wake = make(chan struct{})
	sc.mu.Unlock()
}

// waitCh returns the channels a long poll of node waits on: one closed on
// any change, one closed on a change to node's assignment.
func (sc *Scheduler) waitCh(node string) (all, mine <-chan struct{}) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	ch, ok := sc.nodeWake[node]
	if !ok {
		ch = make(chan struct{})
		sc.nodeWake[node] = ch
	}
	return sc.wake, ch
}

// Start runs placement, lease expiry and change polling until ctx ends
// (Wait waits for them). Calling it more than once starts one loop.
func (sc *Scheduler) Start(ctx context.Context) {
	sc.once.Do(func() {
		sc.wg.Go(func() { sc.run(ctx) })
		if sc.st.Dialect() == models.DialectPostgres {
			sc.wg.Go(func() { sc.notifier(ctx) })
			sc.wg.Go(func() { sc.listener(ctx) })
		}
	})
}

// Wait waits for the goroutines of Start to end (after its ctx ended).
func (sc *Scheduler) Wait() { sc.wg.Wait() }

// notifier sends one NOTIFY per burst of local changes.
func (sc *Scheduler) notifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sc.notify:
			if err := sc.st.NotifyTasksChanged(ctx, sc.id); err != nil && ctx.Err() == nil {
				sc.log.Warn("task change notification failed (other replicas notice within the poll interval)", "err", err)
			}
		}
	}
}

// listener wakes this replica's long polls when another replica notifies;
// it reconnects after a second if the listening connection fails.
func (sc *Scheduler) listener(ctx context.Context) {
	log := sc.log
	for ctx.Err() == nil {
		err := sc.st.ListenTasksChanged(ctx, func() { sc.listening.Store(true) }, func(from string) {
			if from != sc.id {
				sc.broadcast()
			}
		})
		sc.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		log.Warn("task change listener stopped; long polls fall back to the change-stamp poll until it reconnects", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (sc *Scheduler) run(ctx context.Context) {
	log := sc.log
	log.Info("scheduler started", "lease", sc.lease, "dialect", sc.st.Dialect())
	place := time.NewTicker(placeInterval)
	defer place.Stop()
	poll := time.NewTicker(sc.pollEvery)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sc.kick:
			// Kicks come in bursts (every task of 1,000 streams going live):
			// gather a burst for a moment so one round places it.
			select {
			case <-time.After(kickGather):
			case <-ctx.Done():
				return
			}
			sc.placeRound(ctx, log)
		case <-place.C:
			if !sc.noActiveTasks() {
				sc.placeRound(ctx, log)
			}
		case <-poll.C:
			sc.reapAndPoll(ctx, log)
		}
	}
}

func (sc *Scheduler) placeRound(ctx context.Context, log interface {
	Info(string, ...any)
	Error(string, ...any)
}) {
	if !sc.DeathsHeldOff() {
		// Relay pull placement also moves the pulls of dead origins.
		sc.placeRelayPullsRound(ctx)
	}
	for range 20 { // bounded: 20 batches per round
		now := sc.Now()
		got, err := sc.st.PlaceTasks(ctx, now, sc.lease, now.Add(-sc.lease), placeBatch, placeTasks)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("placement failed", "err", err)
			}
			return
		}
		if len(got) == 0 {
			return
		}
		sc.m.assigned.Add(float64(len(got)))
		log.Info("tasks assigned", "count", len(got), "first", got[0].TaskID, "node", got[0].Node)
		var nodes []string
		seen := map[string]bool{}
		for _, a := range got {
			if !seen[a.Node] {
				seen[a.Node] = true
				nodes = append(nodes, a.Node)
			}
		}
		sc.changedNodes(nodes)
		if len(got) < placeBatch {
			return
		}
	}
}

func (sc *Scheduler) reapAndPoll(ctx context.Context, log interface {
	Info(string, ...any)
	Error(string, ...any)
}) {
	// Lease expiry declares concierges dead: not while the death gate
	// holds (a lease that ran out meanwhile is renewed or expired at the
	// first pass after it).
	if !sc.DeathsHeldOff() && !sc.noActiveTasks() {
		now := sc.Now()
		r, err := sc.st.ExpireLeases(ctx, now, sc.lease, now.Add(-sc.lease))
		if ctx.Err() == nil {
			sc.gate.Observe(err)
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Error("lease expiry failed", "err", err)
			}
			return
		}
		if len(r.Reassigned) > 0 || r.Stopped > 0 {
			sc.m.expired.Add(float64(len(r.Reassigned) + r.Stopped))
			log.Info("leases expired", "reassigned", len(r.Reassigned), "stopped", r.Stopped)
			sc.placeRound(ctx, log)
			sc.changed()
		}
	}
	stamp, err := sc.st.TasksChangeStamp(ctx)
	if ctx.Err() == nil {
		sc.gate.Observe(err) // every PollInterval: how the gate sees the database return
	}
	if err != nil {
		return
	}
	if stamp != sc.stamp {
		sc.stamp = stamp
		sc.placeRound(ctx, log)
		sc.broadcast()
	}
}

// noActiveTasks reports whether the last change stamp counted no active
// task (see the comment on the scheduler). Run loop only, like stamp.
func (sc *Scheduler) noActiveTasks() bool {
	return sc.stamp != "" && models.StampNoActiveTasks(sc.stamp)
}

// assignmentOf builds a concierge's assignment and its version. Each HLS
// task gets its credential for its epoch, signed with the cluster token
// (internal/hlscred): the version already changes with the epoch.
func assignmentOf(tasks []models.SchedTask, lease time.Duration, clusterToken string) wire.Assignment {
	h := sha256.New()
	out := wire.Assignment{Tasks: make([]wire.Task, 0, len(tasks)), LeaseMS: lease.Milliseconds(),
		ProgressMS: wire.ProgressEvery.Milliseconds()}
	for _, t := range tasks {
		d := sha256.Sum256(t.Description)
		fmt.Fprintf(h, "%d:%d:%s:%x;", t.ID, t.Epoch, t.DesiredState, d[:8])
		wt := wire.Task{ID: t.ID, Epoch: t.Epoch, Type: t.Type, DesiredState: t.DesiredState, State: t.State, Description: []byte(t.Description)}
		if t.Type == models.TypeHLS && clusterToken != "" {
			wt.Credential = hlscred.Sign(clusterToken, hlscred.Cred{StreamID: t.StreamID, TaskID: t.ID, Epoch: t.Epoch})
		}
		out.Tasks = append(out.Tasks, wt)
	}
	out.Version = hex.EncodeToString(h.Sum(nil)[:12])
	return out
}

// WaitAssignment answers a concierge's long poll: at once if the version of
// node's assignment differs from after, else when it changes, else after
// wait.
func (sc *Scheduler) WaitAssignment(ctx context.Context, node, after string, wait time.Duration) (wire.Assignment, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		all, mine := sc.waitCh(node) // before reading, so no change is missed
		tasks, err := sc.st.AssignedTasks(ctx, node)
		if err != nil {
			return wire.Assignment{}, err
		}
		a := assignmentOf(tasks, sc.lease, sc.token)
		if a.Version != after {
			return a, nil
		}
		select {
		case <-all:
		case <-mine:
		case <-timer.C:
			return a, nil
		case <-ctx.Done():
			return a, ctx.Err()
		}
		// Settle: changes come in bursts (placement batches, many streams
		// going live); re-reading once per burst instead of once per
		// change keeps N concierges from re-reading N times.
		select {
		case <-time.After(wakeSettle):
		case <-ctx.Done():
			return a, ctx.Err()
		}
	}
}

// kickGather is how long a kicked placement round waits for more kicks.
const kickGather = 25 * time.Millisecond

// wakeSettle is how long a woken long poll waits for more changes before it
// re-reads its assignment.
const wakeSettle = 20 * time.Millisecond

// Collectors are the scheduler's Prometheus collectors: what this replica
// did, and the task counts read from the store at scrape time.
func (sc *Scheduler) Collectors() []prometheus.Collector {
	return []prometheus.Collector{sc.m.assigned, sc.m.expired, sc.m.staleEpoch, taskCollector{sc.st}}
}
