package portier

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/compile"
)

// TestTaskConfigLabels: a task config's "labels" reach the compiled task,
// and the scheduler places the task only on a concierge that has them; a
// task whose labels no concierge has stays pending with the reason; bad
// labels are refused when the config is saved.
func TestTaskConfigLabels(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st := n.Store
			s, err := New(Params{Store: st, ClusterToken: "cluster-secret", Logger: slog.New(slog.DiscardHandler),
				Live: LiveParams{HeartbeatInterval: 200 * time.Millisecond, Compile: compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1935"}}})
			if err != nil {
				t.Fatal(err)
			}
			s.sched.Start(ctx)
			u, err := st.CreateUser(ctx, "labels", "labelspassword", models.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			stream, err := st.CreateStream(ctx, "live", "cam", u.ID)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, nd := range []models.Node{
				{Name: "big", Role: models.NodeRoleConcierge, Capacity: 10},
				{Name: "site-a", Role: models.NodeRoleConcierge, Capacity: 2, Labels: models.Labels{"site": "a", "gpu": "no"}},
			} {
				if _, err := st.RegisterNode(ctx, nd, now); err != nil {
					t.Fatal(err)
				}
			}
			// Pull configs run while enabled, live or not: no publish needed.
			add := func(name, spec string) *models.Task {
				t.Helper()
				c := &models.TaskConfig{StreamID: stream.ID, Type: models.TypePull, Name: name, Enabled: true, Spec: models.RawJSON(spec)}
				if err := st.CreateTaskConfig(ctx, c); err != nil {
					t.Fatal(err)
				}
				if err := s.lv.ConfigChanged(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
				ts, _, err := st.ListTasks(ctx, models.TaskFilter{StreamID: stream.ID, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				for i := range ts {
					if ts[i].ConfigID != nil && *ts[i].ConfigID == c.ID {
						return &ts[i]
					}
				}
				t.Fatalf("config %s has no task", name)
				return nil
			}
			onA := add("cam-a", `{"source":"rtsp://10.0.0.5:554/cam","labels":{"site":"a"}}`)
			nowhere := add("cam-b", `{"source":"rtsp://10.0.0.6:554/cam","labels":{"site":"b"}}`)
			free := add("cam-any", `{"source":"rtsp://10.0.0.7:554/cam"}`)
			if got := onA.Description.Labels; len(got) != 1 || got["site"] != "a" {
				t.Fatalf("compiled labels %v, want site=a", got)
			}
			var a, b, f *models.Task
			testutil.Eventually(t, 5*time.Second, "placement", func() bool {
				for _, name := range []string{"big", "site-a"} {
					st.NodeHeartbeat(ctx, name, models.NodeLoad{}, time.Now())
				}
				a, _ = st.TaskByID(ctx, onA.ID)
				b, _ = st.TaskByID(ctx, nowhere.ID)
				f, _ = st.TaskByID(ctx, free.ID)
				return a.NodeName != "" && f.NodeName != "" && b.Reason != ""
			})
			if a.NodeName != "site-a" {
				t.Errorf("labelled task on %q, want site-a (big has more room but not the label)", a.NodeName)
			}
			if f.NodeName != "big" {
				t.Errorf("unlabelled task on %q, want big (most free capacity)", f.NodeName)
			}
			if b.NodeName != "" || b.State != models.TaskPending || b.Reason != "no live concierge has the labels site=b" {
				t.Errorf("task needing site=b: node %q state %s reason %q", b.NodeName, b.State, b.Reason)
			}

			for _, bad := range []string{
				`{"source":"rtsp://10.0.0.5/cam","labels":{"site":"a b"}}`,
				`{"source":"rtsp://10.0.0.5/cam","labels":{"-x":"a"}}`,
				`{"source":"rtsp://10.0.0.5/cam","labels":"site=a"}`,
			} {
				c := &models.TaskConfig{StreamID: stream.ID, Type: models.TypePull, Name: "bad", Enabled: true, Spec: models.RawJSON(bad)}
				var se *models.SpecError
				if err := st.CreateTaskConfig(ctx, c); !errors.As(err, &se) || se.Field[:6] != "labels" {
					t.Errorf("spec %s: err %v, want a labels field error", bad, err)
				}
			}
		})
	}
}
