package portier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

type schedEnv struct {
	s      *Server
	st     *models.Store
	url    string
	stream int64
}

func newSchedEnv(t *testing.T, st *models.Store, hb time.Duration) *schedEnv {
	t.Helper()
	s, err := New(Params{Store: st, ClusterToken: "cluster-secret", Logger: slog.New(slog.DiscardHandler), Live: LiveParams{HeartbeatInterval: hb}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.sched.Start(ctx)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	u, err := st.CreateUser(ctx, "sched", "schedpassword", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := st.CreateStream(ctx, "live", "sched", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &schedEnv{s: s, st: st, url: srv.URL, stream: stream.ID}
}

func (e *schedEnv) node(t *testing.T, name string, capacity int) {
	t.Helper()
	if _, err := e.st.RegisterNode(context.Background(), models.Node{Name: name, Role: models.NodeRoleConcierge, Capacity: capacity}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// task adds a pending task that costs cores CPU cores.
func (e *schedEnv) task(t *testing.T, cores int) int64 {
	t.Helper()
	tk := &models.Task{StreamID: e.stream, Type: models.TypeRestream, DesiredState: models.DesiredRunning, State: models.TaskPending,
		Description: models.TaskDescription{Command: "/bin/sleep", Args: []string{"30"}, Cost: taskcost.FromCores(cores)}}
	out, _, err := e.st.CreateCompiledTask(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	return out.ID
}

func (e *schedEnv) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	req.Header.Set("Authorization", "Bearer cluster-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *schedEnv) assignment(t *testing.T, node, after string, wait time.Duration) wire.Assignment {
	t.Helper()
	code, b := e.do(t, "GET", fmt.Sprintf(wire.PathAssignments, node)+"?after="+after+"&wait_ms="+fmt.Sprint(wait.Milliseconds()), nil)
	if code != 200 {
		t.Fatalf("assignments of %s: %d %s", node, code, b)
	}
	var a wire.Assignment
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestScheduler runs the scheduler loop and the concierge endpoints on
// SQLite and Postgres: placement by availability within capacity, a
// visible pending reason, long polls woken by changes, lease expiry
// reassigning with epoch+1, and stale-epoch reports refused with 409.
func TestScheduler(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			hb := 100 * time.Millisecond // lease 500 ms
			e := newSchedEnv(t, n.Store, hb)
			e.node(t, "c1", 3)
			e.node(t, "c2", 2)
			first := e.assignment(t, "c1", "", 0)
			if len(first.Tasks) != 0 || first.LeaseMS != 500 {
				t.Fatalf("empty assignment: %+v", first)
			}

			// The long poll answers as soon as a task is placed on c1.
			got := make(chan wire.Assignment, 1)
			go func() { got <- e.assignment(t, "c1", first.Version, 10*time.Second) }()
			time.Sleep(50 * time.Millisecond)
			t0 := time.Now()
			ids := []int64{e.task(t, 1), e.task(t, 1), e.task(t, 1), e.task(t, 1), e.task(t, 1), e.task(t, 2)}
			a := <-got
			t.Logf("%s: long poll woke %v after task creation", n.Name, time.Since(t0).Round(time.Millisecond))
			if a.Version == first.Version || len(a.Tasks) == 0 {
				t.Fatalf("long poll answer: %+v", a)
			}

			// Keep both alive and wait for placement to settle: 5 cost-1 tasks
			// fill c1 (3) and c2 (2); the cost-2 task fits nowhere.
			var tasks []models.SchedTask
			testutil.Eventually(t, 5*time.Second, "placement", func() bool {
				e.st.NodeHeartbeat(ctx, "c1", models.NodeLoad{}, time.Now())
				e.st.NodeHeartbeat(ctx, "c2", models.NodeLoad{}, time.Now())
				tasks, _ = e.st.SchedTasksByID(ctx, ids)
				return tasks[5].Reason != ""
			})
			per := map[string]int{}
			for _, tk := range tasks[:5] {
				per[tk.NodeName]++
				if tk.Epoch != 1 || tk.State != models.TaskAssigned {
					t.Fatalf("task %+v: want assigned at epoch 1", tk)
				}
			}
			if per["c1"] != 3 || per["c2"] != 2 {
				t.Fatalf("load: %v; want c1=3 c2=2 (capacity)", per)
			}
			if tasks[5].State != models.TaskPending || tasks[5].Reason != "no concierge with enough free capacity: needs 2.00 cores, largest free 0.00" {
				t.Fatalf("unplaceable task: %+v", tasks[5])
			}

			// Reports: the current epoch is accepted, a stale one gets 409.
			onC2 := tasks[0]
			for _, tk := range tasks[:5] {
				if tk.NodeName == "c2" {
					onC2 = tk
				}
			}
			code, b := e.do(t, "POST", fmt.Sprintf(wire.PathStatus, "c2", onC2.ID), wire.StatusReport{Epoch: onC2.Epoch, State: "running"})
			if code != 200 {
				t.Fatalf("report: %d %s", code, b)
			}
			code, b = e.do(t, "POST", fmt.Sprintf(wire.PathStatus, "c2", onC2.ID), wire.StatusReport{Epoch: onC2.Epoch - 1, State: "running"})
			if code != 409 || !strings.Contains(string(b), wire.CodeStaleEpoch) {
				t.Fatalf("stale report: %d %s", code, b)
			}
			code, _ = e.do(t, "POST", fmt.Sprintf(wire.PathStatus, "c2", onC2.ID), wire.StatusReport{Epoch: onC2.Epoch, State: "exploded"})
			if code != 400 {
				t.Fatalf("bad state: %d", code)
			}
			code, b = e.do(t, "GET", "/metrics", nil)
			if code != 200 || !strings.Contains(string(b), `portier_tasks{desired="running",state="running"} 1`) ||
				!strings.Contains(string(b), "portier_scheduler_stale_reports_total 1") || !strings.Contains(string(b), "portier_scheduler_assignments_total 5") {
				t.Fatalf("metrics: %d\n%s", code, grepLines(string(b), "portier_tasks", "portier_scheduler"))
			}
			// A batch: each report is answered on its own.
			var onC1 models.SchedTask
			for _, tk := range tasks[:5] {
				if tk.NodeName == "c1" {
					onC1 = tk
				}
			}
			code, b = e.do(t, "POST", fmt.Sprintf(wire.PathStatusBatch, "c1"), wire.StatusBatch{Reports: []wire.TaskStatusReport{
				{TaskID: onC1.ID, StatusReport: wire.StatusReport{Epoch: onC1.Epoch, State: "starting"}},
				{TaskID: onC1.ID, StatusReport: wire.StatusReport{Epoch: onC1.Epoch, State: "running"}},
				{TaskID: onC2.ID, StatusReport: wire.StatusReport{Epoch: onC2.Epoch, State: "running"}},
				{TaskID: 999999, StatusReport: wire.StatusReport{Epoch: 1, State: "running"}},
			}})
			var ans wire.StatusBatchAnswer
			if code != 200 || json.Unmarshal(b, &ans) != nil || len(ans.Results) != 4 {
				t.Fatalf("batch: %d %s", code, b)
			}
			if ans.Results[0].State != "starting" || ans.Results[1].State != "running" ||
				ans.Results[2].Error == nil || ans.Results[2].Error.Code != wire.CodeStaleEpoch ||
				ans.Results[3].Error == nil || ans.Results[3].Error.Code != wire.CodeUnknownTask {
				t.Fatalf("batch results: %s", b)
			}
			for _, bad := range []string{`{"reports":[]}`, `{"reports":[{"task_id":1,"epoch":1,"state":"exploded"}]}`, `{"reports":[{"task_id":0,"state":"running"}]}`, `{"reports":`} {
				code, b = e.do(t, "POST", fmt.Sprintf(wire.PathStatusBatch, "c1"), json.RawMessage(bad))
				if code != 400 || !strings.Contains(string(b), `"code"`) {
					t.Fatalf("bad batch %s: %d %s", bad, code, b)
				}
			}
			code, _ = e.do(t, "GET", fmt.Sprintf(wire.PathAssignments, "nobody"), nil)
			if code != 404 {
				t.Fatalf("unknown concierge: %d", code)
			}

			// c2 stops heartbeating: after its lease its tasks go to c1 with
			// epoch+1 — but c1 is full, so they wait pending with a reason;
			// a third concierge takes them.
			t0 = time.Now()
			e.node(t, "c3", 4)
			testutil.Eventually(t, 5*time.Second, "reassignment", func() bool {
				e.st.NodeHeartbeat(ctx, "c1", models.NodeLoad{}, time.Now())
				e.st.NodeHeartbeat(ctx, "c3", models.NodeLoad{}, time.Now())
				cur, _ := e.st.SchedTasksByID(ctx, []int64{onC2.ID})
				return cur[0].NodeName == "c3"
			})
			t.Logf("%s: dead concierge's task reassigned %v after its last heartbeat (lease 500ms)", n.Name, time.Since(t0).Round(time.Millisecond))
			cur, _ := e.st.SchedTasksByID(ctx, []int64{onC2.ID})
			if cur[0].Epoch != onC2.Epoch+1 {
				t.Fatalf("epoch after reassignment %d, want %d", cur[0].Epoch, onC2.Epoch+1)
			}
			code, _ = e.do(t, "POST", fmt.Sprintf(wire.PathStatus, "c2", onC2.ID), wire.StatusReport{Epoch: onC2.Epoch, State: "running"})
			if code != 409 {
				t.Fatalf("report of the fenced concierge: %d, want 409", code)
			}
			// Capacity still holds everywhere.
			for _, name := range []string{"c1", "c2", "c3"} {
				mine, _ := e.st.AssignedTasks(ctx, name)
				used := 0
				for _, tk := range mine {
					used += models.PlacementOf(tk.Description).Cost
				}
				caps := map[string]int{"c1": 3, "c2": 2, "c3": 4}
				if name != "c2" && used > taskcost.FromCores(caps[name]) {
					t.Fatalf("%s uses %d over capacity %d", name, used, caps[name])
				}
			}

			// Drain c3: its tasks are handed back and wait for a new home.
			code, b = e.do(t, "POST", fmt.Sprintf(wire.PathDrain, "c3"), nil)
			var d wire.DrainAnswer
			json.Unmarshal(b, &d)
			if code != 200 || len(d.Tasks) == 0 {
				t.Fatalf("drain: %d %s", code, b)
			}
			code, b = e.do(t, "GET", fmt.Sprintf(wire.PathHandoff, "c3")+"?tasks="+fmt.Sprint(d.Tasks[0]), nil)
			var h wire.HandoffAnswer
			json.Unmarshal(b, &h)
			if code != 200 || len(h.Waiting) != 1 {
				t.Fatalf("handoff: %d %s", code, b)
			}
			code, _ = e.do(t, "GET", fmt.Sprintf(wire.PathHandoff, "c3")+"?tasks=1,x", nil)
			if code != 400 {
				t.Fatalf("bad handoff ids: %d", code)
			}
		})
	}
}

func TestConciergeAPIAuth(t *testing.T) {
	e := newSchedEnv(t, modelstest.SQLite(t), time.Second)
	e.node(t, "c1", 1)
	req, _ := http.NewRequest("GET", e.url+fmt.Sprintf(wire.PathAssignments, "c1"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no token: %d, want 401", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer wrong")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d, want 401", resp.StatusCode)
	}
}

// TestSchedulerScale places 3,000 tasks on 20 concierges with two
// control-plane schedulers racing on the same database (two replicas on
// Postgres): every task is assigned exactly once, capacity holds, and the
// load spreads evenly. It logs the time to place everything.
func TestSchedulerScale(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newSchedEnv(t, n.Store, 2*time.Second)
			replica, err := New(Params{Store: n.Store, ClusterToken: "cluster-secret", Logger: slog.New(slog.DiscardHandler), Live: LiveParams{HeartbeatInterval: 2 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			if n.Name == "postgres" {
				rctx, cancel := context.WithCancel(ctx)
				t.Cleanup(cancel)
				replica.sched.Start(rctx)
			}
			// SQLite is the single-replica, small-install store: 1,000 tasks.
			nodes, tasks, capacity := 20, 3000, 160
			if n.Name == "sqlite" {
				tasks, capacity = 1000, 60
			}
			for i := range nodes {
				e.node(t, fmt.Sprintf("c%02d", i), capacity)
			}
			// The concierges heartbeat on their own, as real ones do.
			hbCtx, stopHB := context.WithCancel(ctx)
			defer stopHB()
			go func() {
				for hbCtx.Err() == nil {
					for i := range nodes {
						e.st.NodeHeartbeat(hbCtx, fmt.Sprintf("c%02d", i), models.NodeLoad{}, time.Now())
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			// Insert the tasks in one statement, as a burst of streams going live would.
			rows := make([]models.Task, tasks)
			for i := range rows {
				rows[i] = models.Task{StreamID: e.stream, Type: models.TypeRestream, DesiredState: models.DesiredRunning, State: models.TaskPending,
					Description: models.TaskDescription{Command: "/bin/sleep", Args: []string{"30"}, Cost: taskcost.PerCore}}
			}
			t0 := time.Now()
			if err := n.Store.DB.CreateInBatches(rows, 500).Error; err != nil {
				t.Fatal(err)
			}
			inserted := time.Since(t0)
			var per map[string]int
			testutil.Eventually(t, 120*time.Second, "all tasks assigned", func() bool {
				per = map[string]int{}
				total := 0
				for i := range nodes {
					mine, _ := e.st.AssignedTasks(ctx, fmt.Sprintf("c%02d", i))
					per[fmt.Sprintf("c%02d", i)] = len(mine)
					total += len(mine)
				}
				return total == tasks
			})
			took := time.Since(t0)
			lo, hi := tasks, 0
			for _, v := range per {
				lo, hi = min(lo, v), max(hi, v)
				if v > capacity {
					t.Fatalf("a concierge holds %d tasks over capacity %d", v, capacity)
				}
			}
			var epochs []int64
			if err := n.Store.DB.Table("tasks").Where("epoch <> 1").Pluck("id", &epochs).Error; err != nil || len(epochs) != 0 {
				t.Fatalf("%d tasks assigned more than once (epoch ≠ 1): %v", len(epochs), err)
			}
			t.Logf("%s: %d tasks on %d concierges: inserted in %v, all assigned %v after insert start; per concierge min %d max %d",
				n.Name, tasks, nodes, inserted.Round(time.Millisecond), took.Round(time.Millisecond), lo, hi)
			if hi-lo > 1 {
				t.Fatalf("uneven spread: min %d max %d", lo, hi)
			}
		})
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
