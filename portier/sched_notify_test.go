package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/sched"
)

// TestSchedulerNotifyAcrossReplicas runs two control-plane replicas
// (portier.New, each with its own scheduler and store) on one Postgres
// schema. Replica A's change-stamp poll is slowed to an hour, so only
// LISTEN/NOTIFY can wake its long polls: a task placed by replica B must
// reach a concierge long-polling A at once; then, with A's poll back at
// 250 ms and A's listener unable to hear (B does not notify), the fallback
// still wakes it.
func TestSchedulerNotifyAcrossReplicas(t *testing.T) {
	dsn, ok := modelstest.Schema(t)
	if !ok {
		t.Fatal("this test needs Postgres (PORTIER_TEST_POSTGRES_URL)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *models.Store {
		st, err := models.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	replica := func(st *models.Store, poll time.Duration) (*Server, string) {
		s, err := New(Params{Store: st, ClusterToken: "cluster-secret", Logger: slog.New(slog.DiscardHandler),
			Live: LiveParams{HeartbeatInterval: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		s.sched.SetPollEvery(poll)
		s.sched.Start(ctx)
		hs := httptest.NewServer(s.Handler())
		t.Cleanup(hs.Close)
		return s, hs.URL
	}
	a, urlA := replica(stA, time.Hour)
	b, _ := replica(stB, time.Hour)
	testutil.Eventually(t, 10*time.Second, "both listeners", func() bool { return a.sched.Listening() && b.sched.Listening() })

	u, err := stB.CreateUser(ctx, "notify", "notifypassword", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := stB.CreateStream(ctx, "live", "notify", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stB.RegisterNode(ctx, models.Node{Name: "c1", Role: models.NodeRoleConcierge, Capacity: 10}, time.Now()); err != nil {
		t.Fatal(err)
	}
	poll := func(url, after string) (wire.Assignment, time.Duration) {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", url+fmt.Sprintf(wire.PathAssignments, "c1")+"?after="+after+"&wait_ms=20000", nil)
		req.Header.Set("Authorization", "Bearer cluster-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return wire.Assignment{}, 0
		}
		defer resp.Body.Close()
		var as wire.Assignment
		if err := json.NewDecoder(resp.Body).Decode(&as); err != nil || resp.StatusCode != 200 {
			t.Errorf("long poll: HTTP %d %v", resp.StatusCode, err)
		}
		return as, time.Since(t0)
	}
	first, _ := poll(urlA, "")
	if len(first.Tasks) != 0 {
		t.Fatalf("assignment before any task: %+v", first)
	}

	addTask := func() int64 {
		tk, _, err := stB.CreateCompiledTask(ctx, &models.Task{StreamID: stream.ID, Type: models.TypeRestream, DesiredState: models.DesiredRunning,
			State: models.TaskPending, Description: models.TaskDescription{Command: "sleep", Args: []string{"30"}, Cost: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}

	// 1. Replica B places; replica A's long poll wakes by NOTIFY alone.
	type answer struct {
		as   wire.Assignment
		took time.Duration
	}
	got := make(chan answer, 1)
	go func() { as, d := poll(urlA, first.Version); got <- answer{as, d} }()
	time.Sleep(200 * time.Millisecond) // let the long poll start waiting
	t0 := time.Now()
	id := addTask()
	b.sched.Kick()
	var ans answer
	select {
	case ans = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("replica A's long poll did not wake within 10 s of replica B placing a task (its poll fallback is 1 h)")
	}
	wake := time.Since(t0)
	if len(ans.as.Tasks) != 1 || ans.as.Tasks[0].ID != id {
		t.Fatalf("woken assignment %+v, want task %d", ans.as, id)
	}
	t.Logf("task created and placed by replica B → long poll on replica A answered after %v (by NOTIFY; A's stamp poll is 1 h)", wake.Round(time.Microsecond))
	if wake > time.Second {
		t.Errorf("cross-replica wake took %v, want well under a second", wake)
	}

	// 2. Fallback: a change no replica notifies (written straight to the
	// database) still reaches a long poll on A within its 250 ms poll.
	a2, urlA2 := replica(stA, sched.PollInterval) // a third replica with the default poll
	_ = a2
	cur, _ := poll(urlA2, "")
	go func() { as, d := poll(urlA2, cur.Version); got <- answer{as, d} }()
	time.Sleep(200 * time.Millisecond)
	t0 = time.Now()
	if err := stB.StopCompiledTask(ctx, id, "stopped behind the replicas' backs"); err != nil {
		t.Fatal(err)
	}
	select {
	case ans = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not wake within 10 s of an un-notified change")
	}
	t.Logf("un-notified change → long poll answered after %v (change-stamp poll fallback, every %v)", time.Since(t0).Round(time.Millisecond), sched.PollInterval)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("fallback wake took %v", d)
	}
	if len(ans.as.Tasks) != 1 || ans.as.Tasks[0].DesiredState != models.DesiredStopped {
		t.Errorf("assignment after the stop: %+v", ans.as)
	}
}
