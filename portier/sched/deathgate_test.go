package sched

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestDeathGate: the gate holds off for a window after the start and
// after the last failure, counted from the first success after it; a
// success between failures does not shorten the hold; a cancelled caller
// is no failure.
func TestDeathGate(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g := NewDeathGate(3*time.Second, clk.now, slog.New(slog.DiscardHandler))
	down := errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")
	step := func(what string, d time.Duration, obs error, wantHold bool, wantLeft time.Duration) {
		t.Helper()
		clk.add(d)
		if obs != nil {
			g.Observe(obs)
		}
		hold, left := g.Hold()
		if hold != wantHold || left != wantLeft {
			t.Errorf("%s: hold=%v left=%v, want %v %v", what, hold, left, wantHold, wantLeft)
		}
	}
	step("at the start", 0, nil, true, 3*time.Second)
	g.Observe(nil)
	step("a window after the start", 3*time.Second, nil, false, 0)
	step("the database fails", time.Second, down, true, 3*time.Second)
	step("10 s into the outage", 10*time.Second, down, true, 3*time.Second)
	clk.add(time.Second)
	g.Observe(nil) // back
	step("2 s after the return", 2*time.Second, nil, true, time.Second)
	step("a failure again", 0, down, true, 3*time.Second)
	clk.add(500 * time.Millisecond)
	g.Observe(nil)
	step("2.9 s after the last return", 2900*time.Millisecond, nil, true, 100*time.Millisecond)
	step("cancelled callers are no failure", 0, context.Canceled, true, 100*time.Millisecond)
	step("a window of successes after the last return", 100*time.Millisecond, nil, false, 0)
	g.Observe(nil)
	step("successes keep it open", time.Minute, nil, false, 0)
}

// TestLeaseExpiryAfterDBOutage: after a database outage longer than the
// lease, the first passes once it is back find every lease expired and
// every heartbeat stale. The scheduler reassigns nothing then; once the
// database has answered for an alive window it renews the lease of the
// concierge that heartbeated again and reassigns only the tasks of the one
// that did not.
func TestLeaseExpiryAfterDBOutage(t *testing.T) {
	ctx := context.Background()
	st := modelstest.SQLite(t)
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	sc := New(Params{Store: st, Heartbeat: time.Second, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	u, err := st.CreateUser(ctx, "gate", "gatepassword", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.CreateStream(ctx, "live", "gate", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alive", "dies"} {
		if _, err := st.RegisterNode(ctx, models.Node{Name: n, Role: models.NodeRoleConcierge, Capacity: 1}, clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		tk := &models.Task{StreamID: s.ID, Type: models.TypeRestream, DesiredState: models.DesiredRunning, State: models.TaskPending,
			Description: models.TaskDescription{Command: "/bin/sleep", Args: []string{"30"}, Cost: taskcost.PerCore}} // a core each: each concierge is full
		if _, _, err := st.CreateCompiledTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat := func(n string) {
		t.Helper()
		err := st.NodeHeartbeat(ctx, n, models.NodeLoad{}, clk.now())
		sc.DBResult(err)
		if err != nil {
			t.Fatal(err)
		}
	}
	placement := func() map[string]int64 { // node → epoch of its task
		t.Helper()
		ts, _, err := st.ListTasks(ctx, models.TaskFilter{StreamID: s.ID})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, tk := range ts {
			out[tk.NodeName] += tk.Epoch
		}
		return out
	}

	clk.add(sc.alive) // past the start's hold
	sc.reapAndPoll(ctx, sc.log)
	sc.placeRound(ctx, sc.log)
	before := placement()
	if before["alive"] != 1 || before["dies"] != 1 {
		t.Fatalf("placement: %v, want one task on each concierge at epoch 1", before)
	}

	// A 20 s outage: every call fails.
	clk.add(time.Second)
	sc.DBResult(errors.New("connection refused"))
	clk.add(20 * time.Second)

	// The database is back: the scheduler's first pass sees it; no
	// concierge has heartbeated yet, both look dead.
	sc.reapAndPoll(ctx, sc.log)
	if got := placement(); got["alive"] != 1 || got["dies"] != 1 {
		t.Fatalf("just after the outage: %v, want nothing reassigned", got)
	}
	clk.add(time.Second)
	heartbeat("alive")
	sc.reapAndPoll(ctx, sc.log)
	clk.add(time.Second)
	heartbeat("alive")
	sc.reapAndPoll(ctx, sc.log)
	if got := placement(); got["alive"] != 1 || got["dies"] != 1 {
		t.Fatalf("2 s after the outage: %v, want nothing reassigned", got)
	}
	// A window after the return: "alive" keeps its task (lease renewed,
	// same epoch); the task of "dies" goes back to pending (and stays
	// there: "alive" has no free capacity).
	clk.add(time.Second)
	heartbeat("alive")
	sc.reapAndPoll(ctx, sc.log)
	ts, _, err := st.ListTasks(ctx, models.TaskFilter{StreamID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		switch {
		case tk.Epoch == 1 && tk.NodeName == "alive" && tk.State != models.TaskPending:
		case tk.NodeName == "" && tk.State == models.TaskPending:
		default:
			t.Errorf("a window after the outage: task %d on %q state %s epoch %d, want the live concierge's kept and the dead one's pending", tk.ID, tk.NodeName, tk.State, tk.Epoch)
		}
	}
	if got := placement(); got["alive"] != 1 || got["dies"] != 0 {
		t.Errorf("a window after the outage: %v, want alive's task kept (epoch 1) and dies' reassigned", got)
	}
}
