package models_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

func liveFixture(t *testing.T, s *models.Store) *models.Stream {
	t.Helper()
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "owner", "a-long-password-1", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.CreateStream(ctx, "live", "show", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLiveOrigins(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			now := time.Now().UTC()

			byName, err := s.PublishTargetByName(ctx, "live", "show")
			if err != nil || byName.StreamID != st.ID || byName.PublishKey != st.PublishKey || !byName.Enabled || byName.App != "live" {
				t.Fatalf("by name: %+v %v", byName, err)
			}
			byKey, err := s.PublishTargetByKey(ctx, st.PublishKey)
			if err != nil || byKey.StreamID != st.ID || byKey.Name != "show" {
				t.Fatalf("by key: %+v %v", byKey, err)
			}
			if _, err := s.PublishTargetByName(ctx, "live", "nope"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("unknown: %v", err)
			}
			if _, err := s.PublishTargetByKey(ctx, ""); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("empty key: %v", err)
			}

			went, err := s.AddOrigin(ctx, st.ID, "o1", now, true, &models.AuditEvent{Action: "publish.authorize"})
			if err != nil || !went {
				t.Fatalf("first origin: went=%v err=%v", went, err)
			}
			// Repeated hook: no second transition, but it counts as a publish.
			went, err = s.AddOrigin(ctx, st.ID, "o1", now, true, nil)
			if err != nil || went {
				t.Fatalf("repeat: went=%v err=%v", went, err)
			}
			went, err = s.AddOrigin(ctx, st.ID, "o2", now.Add(time.Second), false, nil)
			if err != nil || went {
				t.Fatalf("second origin: went=%v err=%v", went, err)
			}
			got, _ := s.StreamByID(ctx, st.ID)
			if !got.Live || got.PublishCount != 2 || got.LastPublishAt == nil {
				t.Fatalf("after publishes: live=%v count=%d last=%v", got.Live, got.PublishCount, got.LastPublishAt)
			}
			origins, _ := s.StreamOrigins(ctx, st.ID)
			if len(origins) != 2 || origins[0].NodeName != "o2" {
				t.Fatalf("origins newest first: %+v", origins)
			}
			off, err := s.RemoveOrigin(ctx, st.ID, "o1", nil)
			if err != nil || off {
				t.Fatalf("remove one of two: off=%v err=%v", off, err)
			}
			off, err = s.RemoveOrigin(ctx, st.ID, "o1", nil) // lost/duplicated done
			if err != nil || off {
				t.Fatalf("repeat remove: off=%v err=%v", off, err)
			}
			off, err = s.RemoveOrigin(ctx, st.ID, "o2", nil)
			if err != nil || !off {
				t.Fatalf("remove last: off=%v err=%v", off, err)
			}
			got, _ = s.StreamByID(ctx, st.ID)
			if got.Live {
				t.Fatal("stream still live without origins")
			}
			ev, total, err := s.ListAudit(ctx, models.AuditFilter{Action: "publish.authorize"})
			if err != nil || total != 1 || len(ev) != 1 {
				t.Fatalf("audit in the same transaction: %d %v", total, err)
			}
		})
	}
}

func TestLiveConcurrentTransitions(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			// Many nodes publish at once: exactly one call sees the stream go live.
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				lives int
			)
			nodes := []string{"a", "b", "c", "d", "e", "f"}
			for _, node := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					went, err := s.AddOrigin(ctx, st.ID, node, time.Now(), true, nil)
					if err != nil {
						t.Error(err)
					}
					if went {
						mu.Lock()
						lives++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if lives != 1 {
				t.Fatalf("%d calls saw the stream go live, want 1", lives)
			}
			offs := 0
			for _, node := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					off, err := s.RemoveOrigin(ctx, st.ID, node, nil)
					if err != nil {
						t.Error(err)
					}
					if off {
						mu.Lock()
						offs++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			got, _ := s.StreamByID(ctx, st.ID)
			if offs != 1 || got.Live {
				t.Fatalf("offline transitions %d (want 1), live=%v", offs, got.Live)
			}
		})
	}
}

func TestNodesAndDirectory(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			now := time.Now().UTC()
			for _, name := range []string{"origin-1", "origin-2"} {
				if _, err := s.RegisterNode(ctx, models.Node{Name: name, Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935", Capacity: 4}, now); err != nil {
					t.Fatal(err)
				}
			}
			// Re-register (the same node: same role and address) updates in
			// place; another address is another node (TestClaimNodeName).
			nd, err := s.RegisterNode(ctx, models.Node{Name: "origin-1", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935", Labels: models.Labels{"zone": "a"}}, now)
			if err != nil || nd.Capacity != 0 || nd.Labels["zone"] != "a" {
				t.Fatalf("re-register: %+v %v", nd, err)
			}
			all, _ := s.ListNodes(ctx, models.NodeRoleOrigin)
			if len(all) != 2 {
				t.Fatalf("nodes: %d", len(all))
			}
			if err := s.NodeHeartbeat(ctx, "ghost", models.NodeLoad{}, now); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("heartbeat of unknown node: %v", err)
			}
			if err := s.NodeHeartbeat(ctx, "origin-2", models.NodeLoad{Connections: 3}, now); err != nil {
				t.Fatal(err)
			}
			s.AddOrigin(ctx, st.ID, "origin-1", now, true, nil)
			s.AddOrigin(ctx, st.ID, "origin-2", now.Add(time.Second), true, nil)
			s.AddOrigin(ctx, st.ID, "srs:vid-1", now, true, nil) // hook-only node: never in the directory
			dir, err := s.DirectoryOrigins(ctx, "live", "show", now.Add(-3*time.Second))
			if err != nil || len(dir) != 2 || dir[0].Name != "origin-2" {
				t.Fatalf("directory: %+v %v", dir, err)
			}
			dead, err := s.DeadOriginNodes(ctx, now.Add(time.Minute))
			if err != nil || len(dead) != 2 {
				t.Fatalf("dead nodes: %v %v", dead, err)
			}
			off, err := s.ClearNodeOrigins(ctx, "origin-1", nil)
			if err != nil || len(off) != 0 {
				t.Fatalf("clear origin-1: %v %v", off, err)
			}
			off, err = s.ClearNodeOrigins(ctx, "origin-2", nil)
			if err != nil || len(off) != 0 {
				t.Fatalf("clear origin-2 (srs still holds it): %v %v", off, err)
			}
			off, err = s.ExpireOrigins(ctx, "srs:", now.Add(time.Second))
			if err != nil || len(off) != 1 || off[0] != st.ID {
				t.Fatalf("expire srs: %v %v", off, err)
			}
			got, _ := s.StreamByID(ctx, st.ID)
			if got.Live {
				t.Fatal("stream still live")
			}
		})
	}
}

func TestCompiledTasks(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRestream, Name: "yt", Enabled: true, Spec: models.RawJSON(`{"target":"rtmp://a.example.com/live2"}`)}
			if err := s.CreateTaskConfig(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			pull := &models.TaskConfig{StreamID: st.ID, Type: models.TypePull, Name: "cam", Enabled: true, Spec: models.RawJSON(`{"source":"rtsp://cam.example.com/s1"}`)}
			if err := s.CreateTaskConfig(ctx, pull); err != nil {
				t.Fatal(err)
			}
			sts, cfgs, err := s.LiveCompileInputs(ctx, []int64{st.ID}, models.TypePull)
			if err != nil || len(cfgs) != 1 || cfgs[0].ID != cfg.ID || sts[st.ID] == nil || sts[st.ID].Application.Name != "live" {
				t.Fatalf("compile inputs: %v %v %v", sts, cfgs, err)
			}
			mk := func() *models.Task {
				id := cfg.ID
				return &models.Task{ConfigID: &id, StreamID: st.ID, Type: cfg.Type, DesiredState: models.DesiredRunning, State: models.TaskPending,
					Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "x"}, Cost: 1}}
			}
			// Going live creates the tasks in AddOrigin's transaction: one
			// per config, even when the compiler returns it twice, and none
			// again while a task of the config is active.
			calls := 0
			s.SetLiveCompiler(func(sts map[int64]*models.Stream, cfgs []models.TaskConfig) []*models.Task {
				calls++
				if len(cfgs) != 1 || cfgs[0].ID != cfg.ID || sts[st.ID] == nil {
					t.Errorf("compiler got %d configs, streams %v", len(cfgs), sts)
				}
				return []*models.Task{mk(), mk()}
			})
			defer s.SetLiveCompiler(nil)
			countTasks := func() int {
				all, _, err := s.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
				if err != nil {
					t.Fatal(err)
				}
				return len(all)
			}
			if went, err := s.AddOrigin(ctx, st.ID, "origin-1", time.Now(), true, nil); err != nil || !went {
				t.Fatalf("went live %v, %v", went, err)
			}
			if n := countTasks(); n != 1 || calls != 1 {
				t.Fatalf("after going live: %d tasks from %d compiler calls, want 1 and 1", n, calls)
			}
			// A second origin: the stream was live already, nothing compiled.
			if went, err := s.AddOrigin(ctx, st.ID, "origin-2", time.Now(), true, nil); err != nil || went {
				t.Fatalf("second origin: went live %v, %v", went, err)
			}
			if n := countTasks(); n != 1 || calls != 1 {
				t.Fatalf("after a second origin: %d tasks from %d compiler calls", n, calls)
			}
			live, err := s.ActiveConfigTask(ctx, cfg.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.StopCompiledTask(ctx, live.ID, "test"); err != nil {
				t.Fatal(err)
			}

			t1, created, err := s.CreateCompiledTask(ctx, mk())
			if err != nil || !created {
				t.Fatalf("first: %v %v", created, err)
			}
			t2, created, err := s.CreateCompiledTask(ctx, mk())
			if err != nil || created || t2.ID != t1.ID {
				t.Fatalf("second must return the active one: %v %v", created, err)
			}
			next := mk()
			if err := s.ReplaceCompiledTask(ctx, t1.ID, next, "edited"); err != nil {
				t.Fatal(err)
			}
			act, err := s.ActiveConfigTask(ctx, cfg.ID)
			if err != nil || act.ID != next.ID {
				t.Fatalf("active after replace: %+v %v", act, err)
			}
			old, _ := s.TaskByID(ctx, t1.ID)
			if old.DesiredState != models.DesiredStopped || old.State != models.TaskStopped {
				t.Fatalf("replaced unassigned task: desired=%s state=%s", old.DesiredState, old.State)
			}
			if err := s.SetTaskConfigVersion(ctx, next.ID, 7); err != nil {
				t.Fatal(err)
			}
			n, err := s.StopStreamTasks(ctx, st.ID, "offline", models.TypePull)
			if err != nil || n != 1 {
				t.Fatalf("stop: %d %v", n, err)
			}
			if _, err := s.ActiveConfigTask(ctx, cfg.ID); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("still active: %v", err)
			}
		})
	}
}
