package models_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// firstFit places each task on the first node with room: enough for the
// store mechanics tested here (the real rule is portier.placeTasks).
func firstFit(nodes []models.SchedNode, pending []models.SchedTask) []models.PlaceDecision {
	free := map[string]int{}
	for _, n := range nodes {
		free[n.Name] = n.Capacity - n.Used
	}
	var out []models.PlaceDecision
	for _, t := range pending {
		c := models.PlacementOf(t.Description).Cost
		d := models.PlaceDecision{TaskID: t.ID, Reason: "full"}
		for _, n := range nodes {
			if free[n.Name] >= c {
				d = models.PlaceDecision{TaskID: t.ID, Node: n.Name}
				free[n.Name] -= c
				break
			}
		}
		out = append(out, d)
	}
	return out
}

type schedFixture struct {
	s      *models.Store
	stream int64
}

func newSchedFixture(t *testing.T, s *models.Store) *schedFixture {
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "sched", "schedpassword", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.CreateStream(ctx, "live", "sched", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &schedFixture{s: s, stream: st.ID}
}

func (f *schedFixture) node(t *testing.T, name string, capacity int, now time.Time) {
	if _, err := f.s.RegisterNode(context.Background(), models.Node{Name: name, Role: models.NodeRoleConcierge, Capacity: capacity}, now); err != nil {
		t.Fatal(err)
	}
}

// task adds a pending task that costs cores CPU cores.
func (f *schedFixture) task(t *testing.T, cores int) int64 {
	return f.taskOf(t, models.TypeRestream, cores*taskcost.PerCore)
}

// taskOf adds a pending task of type typ whose description costs cost
// (taskcost units, as stored).
func (f *schedFixture) taskOf(t *testing.T, typ string, cost int) int64 {
	t.Helper()
	tk := &models.Task{StreamID: f.stream, Type: typ, DesiredState: models.DesiredRunning, State: models.TaskPending,
		Description: models.TaskDescription{Command: "/bin/sleep", Args: []string{"30"}, Cost: cost}}
	out, _, err := f.s.CreateCompiledTask(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	return out.ID
}

func TestSchedStore(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newSchedFixture(t, n.Store)
			s := f.s
			now := time.Now().UTC()
			lease := 5 * time.Second
			f.node(t, "c1", 2, now)
			a, b, c := f.task(t, 1), f.task(t, 1), f.task(t, 1)

			got, err := s.PlaceTasks(ctx, now, lease, now.Add(-lease), 0, firstFit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Epoch != 1 {
				t.Fatalf("placed %+v; want 2 tasks at epoch 1", got)
			}
			ts, _ := s.SchedTasksByID(ctx, []int64{a, b, c})
			if ts[0].State != models.TaskAssigned || ts[0].NodeName != "c1" || ts[2].State != models.TaskPending || ts[2].Reason != "full" {
				t.Fatalf("after placement: %+v", ts)
			}

			// Reports: the current epoch is accepted, a stale one refused.
			if _, err := s.ReportTaskStatus(ctx, "c1", a, models.StatusReport{Epoch: 1, State: models.TaskRunning}, now, lease); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ReportTaskStatus(ctx, "c1", a, models.StatusReport{Epoch: 0, State: models.TaskRunning}, now, lease); !errors.Is(err, models.ErrStaleEpoch) {
				t.Fatalf("stale epoch report: %v", err)
			}
			if _, err := s.ReportTaskStatus(ctx, "c2", a, models.StatusReport{Epoch: 1, State: models.TaskRunning}, now, lease); !errors.Is(err, models.ErrStaleEpoch) {
				t.Fatalf("report from another node: %v", err)
			}

			// A live concierge's leases are renewed, a dead one's tasks go back to pending.
			later := now.Add(2 * lease)
			if err := s.NodeHeartbeat(ctx, "c1", models.NodeLoad{}, later.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			r, err := s.ExpireLeases(ctx, later, lease, later.Add(-lease))
			if err != nil || r.Renewed != 2 || len(r.Reassigned) != 0 {
				t.Fatalf("renew: %+v %v", r, err)
			}
			muchLater := later.Add(3 * lease)
			r, err = s.ExpireLeases(ctx, muchLater, lease, muchLater.Add(-lease))
			if err != nil || len(r.Reassigned) != 2 {
				t.Fatalf("expire: %+v %v", r, err)
			}
			ts, _ = s.SchedTasksByID(ctx, []int64{a})
			if ts[0].Epoch != 1 || ts[0].State != models.TaskPending || ts[0].NodeName != "" {
				t.Fatalf("after expiry: %+v", ts[0])
			}
			if _, err := s.ReportTaskStatus(ctx, "c1", a, models.StatusReport{Epoch: 1, State: models.TaskRunning}, muchLater, lease); !errors.Is(err, models.ErrStaleEpoch) {
				t.Fatalf("report of the fenced runner: %v", err)
			}

			// Reassignment raises the epoch; drain hands tasks back and takes the node out of placement.
			f.node(t, "c2", 10, muchLater)
			if _, err := s.PlaceTasks(ctx, muchLater, lease, muchLater.Add(-lease), 0, firstFit); err != nil {
				t.Fatal(err)
			}
			mine, _ := s.AssignedTasks(ctx, "c2")
			if len(mine) != 3 || mine[0].ID != a || mine[0].Epoch != 2 {
				t.Fatalf("c2 holds %+v; want 3 tasks, task %d reassigned at epoch 2", mine, a)
			}
			ids, err := s.DrainConcierge(ctx, "c2", muchLater, nil)
			if err != nil || len(ids) != 3 {
				t.Fatalf("drain: %v %v", ids, err)
			}
			placed, err := s.PlaceTasks(ctx, muchLater, lease, muchLater.Add(-lease), 0, firstFit)
			if err != nil || len(placed) != 0 {
				t.Fatalf("placed on a draining node: %+v %v", placed, err)
			}
			if _, err := s.DrainConcierge(ctx, "nobody", muchLater, nil); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("drain unknown: %v", err)
			}
			st1, _ := s.TasksChangeStamp(ctx)
			if err := s.StopCompiledTask(ctx, a, "test"); err != nil {
				t.Fatal(err)
			}
			st2, _ := s.TasksChangeStamp(ctx)
			if st1 == st2 {
				t.Fatalf("change stamp did not change: %s", st1)
			}
		})
	}
}

// TestSchedConcurrentPlacement runs placement from several goroutines (as
// several control-plane replicas would) and checks capacity is never exceeded.
func TestSchedConcurrentPlacement(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newSchedFixture(t, n.Store)
			now := time.Now().UTC()
			for i := range 4 {
				f.node(t, fmt.Sprintf("c%d", i), 5, now)
			}
			for range 40 {
				f.task(t, 1)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						if _, err := f.s.PlaceTasks(ctx, now, 5*time.Second, now.Add(-5*time.Second), 7, firstFit); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			total := 0
			for i := range 4 {
				mine, err := f.s.AssignedTasks(ctx, fmt.Sprintf("c%d", i))
				if err != nil {
					t.Fatal(err)
				}
				if len(mine) > 5 {
					t.Fatalf("c%d holds %d tasks over capacity 5", i, len(mine))
				}
				total += len(mine)
			}
			if total != 20 {
				t.Fatalf("%d tasks assigned, want 20 (full capacity)", total)
			}
		})
	}
}

// TestReportTaskStatusesBatch applies a concierge's batch: alike reports
// share a statement, a task's reports apply in order, and each report is
// judged on its own (a stale or unknown one does not spoil the others).
func TestReportTaskStatusesBatch(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newSchedFixture(t, n.Store)
			s := f.s
			now := time.Now().UTC()
			lease := 5 * time.Second
			f.node(t, "c1", 10, now)
			a, b, c, d := f.task(t, 1), f.task(t, 1), f.task(t, 1), f.task(t, 1)
			if _, err := s.PlaceTasks(ctx, now, lease, now.Add(-lease), 0, firstFit); err != nil {
				t.Fatal(err)
			}
			exit := 1
			res, err := s.ReportTaskStatuses(ctx, "c1", []models.TaskReport{
				{TaskID: a, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
				{TaskID: b, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskStarting}},
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskBackoff, ExitCode: &exit, Error: "target refused connection"}},
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskStarting}},
				{TaskID: d, StatusReport: models.StatusReport{Epoch: 7, State: models.TaskRunning}},
				{TaskID: 1 << 40, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
			}, now, lease)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 7 {
				t.Fatalf("%d results for 7 reports", len(res))
			}
			for i := 0; i < 5; i++ {
				if res[i].Err != nil {
					t.Fatalf("report %d refused: %v", i, res[i].Err)
				}
			}
			if !errors.Is(res[5].Err, models.ErrStaleEpoch) || !errors.Is(res[6].Err, models.ErrNotFound) {
				t.Fatalf("stale and unknown reports: %v, %v", res[5].Err, res[6].Err)
			}
			if res[2].Task.State != models.TaskStarting || res[3].Task.State != models.TaskBackoff || res[4].Task.Restarts != 1 {
				t.Fatalf("results of task %d's reports: %+v %+v %+v", c, res[2].Task, res[3].Task, res[4].Task)
			}
			// Prev is the state each report found (webhooks tell failures
			// and recoveries from repeats by it).
			if res[3].Prev != models.TaskStarting || res[4].Prev != models.TaskBackoff {
				t.Fatalf("previous states %q, %q; want starting, backoff", res[3].Prev, res[4].Prev)
			}
			if !res[3].Failed || res[3].Recovered || res[0].Failed || res[0].Recovered || res[4].Failed {
				t.Fatalf("failed/recovered flags: %+v", res[:5])
			}
			all, _, err := s.ListTasks(ctx, models.TaskFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[int64]models.Task{}
			for _, tk := range all {
				got[tk.ID] = tk
			}
			for _, id := range []int64{a, b} {
				if got[id].State != models.TaskRunning || got[id].StartedAt == nil || got[id].LeaseUntil == nil || !got[id].LeaseUntil.After(now) {
					t.Fatalf("task %d after running report: %+v", id, got[id])
				}
			}
			tc := got[c]
			if tc.State != models.TaskStarting || tc.Restarts != 1 || tc.LastExitCode == nil || *tc.LastExitCode != 1 || tc.LastError != "target refused connection" {
				t.Fatalf("task %d after starting, backoff, starting: %+v", c, tc)
			}
			if got[d].State != models.TaskAssigned {
				t.Fatalf("a stale report changed task %d: %+v", d, got[d])
			}
			// The next failure of the same streak is no new failure; the
			// first running after it is the recovery.
			res, err = s.ReportTaskStatuses(ctx, "c1", []models.TaskReport{
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskBackoff, Error: "target refused connection"}},
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskStarting}},
			}, now, lease)
			if err != nil || res[0].Failed || res[1].Failed || res[1].Recovered {
				t.Fatalf("second failure: %+v, %v", res, err)
			}
			res, err = s.ReportTaskStatuses(ctx, "c1", []models.TaskReport{
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
				{TaskID: c, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
			}, now, lease)
			if err != nil || !res[0].Recovered || res[1].Recovered || res[0].Prev != models.TaskStarting || res[1].Prev != models.TaskRunning {
				t.Fatalf("recovery: %+v, %v", res, err)
			}

			// A stopped task the runner gives up while it should run goes
			// back to pending; the next report of that epoch is refused.
			res, err = s.ReportTaskStatuses(ctx, "c1", []models.TaskReport{
				{TaskID: a, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskStopped}},
				{TaskID: a, StatusReport: models.StatusReport{Epoch: 1, State: models.TaskRunning}},
			}, now, lease)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || res[0].Task.State != models.TaskPending || !errors.Is(res[1].Err, models.ErrStaleEpoch) {
				t.Fatalf("stop then run: %+v / %v, %v", res[0].Task, res[0].Err, res[1].Err)
			}
			if _, err := s.ReportTaskStatuses(ctx, "c1", make([]models.TaskReport, models.MaxReportBatch+1), now, lease); err == nil {
				t.Fatal("an oversized batch was accepted")
			}
		})
	}
}

// TestStampNoActiveTasks: the scheduler skips its timed rounds while the
// stamp counts no active task, so a new pending task must end that.
func TestStampNoActiveTasks(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newSchedFixture(t, n.Store)
			st, err := f.s.TasksChangeStamp(ctx)
			if err != nil || !models.StampNoActiveTasks(st) {
				t.Fatalf("stamp without tasks %q (%v): want no active task", st, err)
			}
			f.task(t, 1)
			if st, _ = f.s.TasksChangeStamp(ctx); models.StampNoActiveTasks(st) {
				t.Fatalf("stamp with a pending task %q: want an active task", st)
			}
		})
	}
}
