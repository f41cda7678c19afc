package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// An RTSP pull task goes to an alive origin that can pull, is reported to
// it in its heartbeat answer with the stream's path and key, runs when the
// origin says it plays, moves when its origin dies, and stops when it
// should no longer run.
func TestRelayPulls(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			t0 := time.Now().UTC()
			reg := func(name string, caps ...string) {
				t.Helper()
				if _, err := s.RegisterNode(ctx, models.Node{Name: name, Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935",
					Capabilities: caps}, t0); err != nil {
					t.Fatal(err)
				}
			}
			reg("old") // an older origin: no capability
			first := func(o []models.PullOrigin, ts []models.SchedTask) []models.PlaceDecision {
				var out []models.PlaceDecision
				for _, x := range ts {
					d := models.PlaceDecision{TaskID: x.ID}
					if len(o) > 0 {
						d.Node = o[0].Name
					}
					out = append(out, d)
				}
				return out
			}
			task, _, err := s.CreateCompiledTask(ctx, &models.Task{StreamID: st.ID, Type: models.TypePull, DesiredState: models.DesiredRunning,
				State: models.TaskPending, Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "rtsp://cam/s"},
					Cost: 1, RelayPull: &models.RelayPull{Source: "rtsp://cam/s"}}})
			if err != nil {
				t.Fatal(err)
			}
			get := func() *models.Task {
				t.Helper()
				x, err := s.TaskByID(ctx, task.ID)
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			lease := 5 * time.Second
			if got, err := s.PlaceRelayPulls(ctx, t0, lease, t0.Add(-3*time.Second), first); err != nil || len(got) != 0 {
				t.Fatalf("no origin can pull: placed %v, %v", got, err)
			}
			if x := get(); x.State != models.TaskPending || x.NodeName != "" {
				t.Fatalf("without an origin that pulls: %s on %q, want pending (for a concierge)", x.State, x.NodeName)
			}

			reg("o1", nodewire.CapRTSPPull)
			got, err := s.PlaceRelayPulls(ctx, t0, lease, t0.Add(-3*time.Second), first)
			if err != nil || len(got) != 1 || got[0].Node != "o1" {
				t.Fatalf("placed %v, %v; want on o1", got, err)
			}
			orders, err := s.OriginPulls(ctx, "o1", []nodewire.PullReport{}, t0)
			if err != nil || len(orders) != 1 || orders[0].Path != "live/show" || orders[0].Key != st.PublishKey ||
				orders[0].URL != "rtsp://cam/s" || orders[0].TaskID != task.ID {
				t.Fatalf("o1's orders %+v, %v", orders, err)
			}
			if o, _ := s.OriginPulls(ctx, "old", []nodewire.PullReport{}, t0); len(o) != 0 {
				t.Fatalf("another origin got %+v", o)
			}
			if _, err := s.OriginPulls(ctx, "o1", []nodewire.PullReport{{TaskID: task.ID, Path: "live/show", Error: "source refused connection", Failures: 2}}, t0); err != nil {
				t.Fatal(err)
			}
			if x := get(); x.State != models.TaskBackoff || x.LastError != "source refused connection" || x.Restarts != 2 {
				t.Fatalf("after a failing report: %s %q restarts %d", x.State, x.LastError, x.Restarts)
			}
			if _, err := s.OriginPulls(ctx, "o1", []nodewire.PullReport{{TaskID: task.ID, Path: "live/show", Playing: true}}, t0); err != nil {
				t.Fatal(err)
			}
			if x := get(); x.State != models.TaskRunning || x.NodeName != "o1" || x.StartedAt == nil || x.LastError != "" {
				t.Fatalf("after a playing report: %+v", x)
			}

			// The stream disabled: o1's answer leaves the pull out (it
			// stops), the task says why; enabled again, it comes back.
			off, on := false, true
			if _, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Enabled: &off}); err != nil {
				t.Fatal(err)
			}
			if o, err := s.OriginPulls(ctx, "o1", []nodewire.PullReport{}, t0); err != nil || len(o) != 0 {
				t.Fatalf("stream disabled: orders %+v, %v", o, err)
			}
			if x := get(); x.State != models.TaskBackoff || x.LastError != "stream disabled" {
				t.Fatalf("stream disabled: %s %q", x.State, x.LastError)
			}
			if _, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Enabled: &on}); err != nil {
				t.Fatal(err)
			}
			if o, _ := s.OriginPulls(ctx, "o1", []nodewire.PullReport{{TaskID: task.ID, Playing: true}}, t0); len(o) != 1 {
				t.Fatalf("stream enabled again: orders %+v", o)
			}

			// o1 stops heartbeating; o2 is alive: the pull moves within the
			// alive window, with a new epoch.
			t1 := t0.Add(4 * time.Second)
			reg2 := t1
			if _, err := s.RegisterNode(ctx, models.Node{Name: "o2", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1936",
				Capabilities: []string{nodewire.CapRTSPPull}}, reg2); err != nil {
				t.Fatal(err)
			}
			epoch := get().Epoch
			got, err = s.PlaceRelayPulls(ctx, t1, lease, t1.Add(-3*time.Second), first)
			if err != nil || len(got) != 1 || got[0].Node != "o2" || got[0].Epoch != epoch+1 {
				t.Fatalf("after o1 died: placed %v, %v; want on o2 with epoch %d", got, err, epoch+1)
			}
			if x := get(); x.State != models.TaskAssigned || x.Reason == "" {
				t.Fatalf("moved task %s, reason %q", x.State, x.Reason)
			}
			if o, _ := s.OriginPulls(ctx, "o1", []nodewire.PullReport{}, t1); len(o) != 0 {
				t.Fatalf("the dead origin still gets %+v", o)
			}

			// Stopped: o2's next answer leaves it out and the task stops.
			if err := s.StopCompiledTask(ctx, task.ID, "config deleted"); err != nil {
				t.Fatal(err)
			}
			if o, err := s.OriginPulls(ctx, "o2", []nodewire.PullReport{{TaskID: task.ID, Playing: true}}, t1); err != nil || len(o) != 0 {
				t.Fatalf("after stop: orders %+v, %v", o, err)
			}
			if x := get(); x.State != models.TaskStopped {
				t.Fatalf("after stop: %s", x.State)
			}
		})
	}
}
