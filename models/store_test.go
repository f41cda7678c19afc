package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

func TestMigrationsAtLatest(t *testing.T) {
	t.Parallel()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			cur, latest, err := n.Store.MigrationStatus(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if cur != latest || cur < 1 {
				t.Fatalf("migrations at %d, latest %d", cur, latest)
			}
			if err := n.Store.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := models.Dialect(n.Name); n.Store.Dialect() != want {
				t.Fatalf("dialect %q, want %q", n.Store.Dialect(), want)
			}
			if n.Store.SingleReplica() != (n.Name == "sqlite") {
				t.Fatalf("SingleReplica wrong for %s", n.Name)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := t.TempDir() + "/p.db"
	s, err := models.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "alice", "password1", models.RoleOperator); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = models.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UserByName(ctx, "alice"); err != nil {
		t.Fatalf("user lost across reopen: %v", err)
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s := n.Store
			pw, created, err := s.EnsureAdmin(ctx, "")
			if err != nil || !created || len(pw) < 16 {
				t.Fatalf("EnsureAdmin: %q %v %v", pw, created, err)
			}
			if _, created, _ := s.EnsureAdmin(ctx, "other-pass"); created {
				t.Fatal("second EnsureAdmin created another admin")
			}
			if _, err := s.Authenticate(ctx, "admin", pw); err != nil {
				t.Fatalf("admin login: %v", err)
			}
			if _, err := s.Authenticate(ctx, "admin", "wrong-password"); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("wrong password: %v", err)
			}
			if _, err := s.Authenticate(ctx, "nobody", "whatever1"); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("unknown user: %v", err)
			}
			u, err := s.CreateUser(ctx, "bob", "bobspassword", models.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateUser(ctx, "bob", "bobspassword", models.RoleOperator); !errors.Is(err, models.ErrConflict) {
				t.Fatalf("duplicate user: %v", err)
			}
			for _, bad := range []struct{ name, pw, role string }{
				{"has space", "password1", models.RoleViewer},
				{"carol", "short", models.RoleViewer},
				{"carol", "password1", "root"},
			} {
				if _, err := s.CreateUser(ctx, bad.name, bad.pw, bad.role); err == nil {
					t.Fatalf("CreateUser(%q,%q,%q) accepted", bad.name, bad.pw, bad.role)
				}
			}

			tok, row, err := s.CreateToken(ctx, u.ID, "ci", []string{"read"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(tok) < 40 || tok[:4] != "ptk_" || row.Hash == tok || row.Prefix != tok[:12] {
				t.Fatalf("token %q row %+v", tok, row)
			}
			gotTok, gotUser, err := s.TokenAuth(ctx, tok)
			if err != nil || gotUser.ID != u.ID || gotTok.Scopes != "read" || gotTok.LastUsedAt == nil {
				t.Fatalf("TokenAuth: %+v %+v %v", gotTok, gotUser, err)
			}
			if _, _, err := s.TokenAuth(ctx, tok+"x"); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("altered token: %v", err)
			}
			if _, _, err := s.TokenAuth(ctx, "ptk_short"); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("short token: %v", err)
			}
			past := time.Now().Add(-time.Minute).UTC()
			expired, _, err := s.CreateToken(ctx, u.ID, "old", nil, &past)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.TokenAuth(ctx, expired); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("expired token: %v", err)
			}
			if _, err := s.RevokeToken(ctx, u.ID, row.ID); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.TokenAuth(ctx, tok); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("revoked token: %v", err)
			}
			if _, err := s.RevokeToken(ctx, u.ID+1000, row.ID); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("revoke someone else's token: %v", err)
			}
			list, err := s.ListTokens(ctx, u.ID)
			if err != nil || len(list) != 2 {
				t.Fatalf("ListTokens: %d %v", len(list), err)
			}
			if _, _, err := s.CreateToken(ctx, u.ID, "x", []string{"root"}, nil); err == nil {
				t.Fatal("unknown scope accepted")
			}
			// A disabled user's tokens stop working.
			tok2, _, _ := s.CreateToken(ctx, u.ID, "two", []string{"read", "write"}, nil)
			dis := true
			if _, err := s.UpdateUser(ctx, u.ID, models.UserUpdate{Disabled: &dis}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.TokenAuth(ctx, tok2); !errors.Is(err, models.ErrNoSecret) {
				t.Fatalf("disabled user's token: %v", err)
			}
		})
	}
}

func TestStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s := n.Store
			u, _ := s.CreateUser(ctx, "op", "password1", models.RoleOperator)
			u2, _ := s.CreateUser(ctx, "op2", "password1", models.RoleOperator)
			st, err := s.CreateStream(ctx, "live", "cam1", u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Application.Name != "live" || len(st.PublishKey) < 30 || !st.Enabled || st.Live {
				t.Fatalf("stream %+v", st)
			}
			if _, err := s.CreateStream(ctx, "live", "cam1", u2.ID); !errors.Is(err, models.ErrConflict) {
				t.Fatalf("duplicate stream: %v", err)
			}
			if _, err := s.CreateStream(ctx, "other", "cam1", u2.ID); err != nil {
				t.Fatalf("same name in another app: %v", err)
			}
			if _, err := s.CreateStream(ctx, "live", "bad name", u.ID); err == nil {
				t.Fatal("invalid name accepted")
			}
			for i := 0; i < 5; i++ {
				if _, err := s.CreateStream(ctx, "live", "s"+string(rune('a'+i)), u2.ID); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.StreamByName(ctx, "live", "cam1")
			if err != nil || got.ID != st.ID || got.Owner.Username != "op" {
				t.Fatalf("StreamByName: %+v %v", got, err)
			}
			if got, err := s.StreamByKey(ctx, st.PublishKey); err != nil || got.ID != st.ID {
				t.Fatalf("StreamByKey: %v", err)
			}
			list, total, err := s.ListStreams(ctx, models.StreamFilter{OwnerID: u2.ID, Limit: 2, Offset: 1})
			if err != nil || total != 6 || len(list) != 2 {
				t.Fatalf("ListStreams: %d of %d, %v", len(list), total, err)
			}
			live := true
			if _, total, _ := s.ListStreams(ctx, models.StreamFilter{Live: &live}); total != 0 {
				t.Fatalf("live streams %d", total)
			}
			name, off := "cam-renamed", false
			up, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Name: &name, Enabled: &off})
			if err != nil || up.Name != name || up.Enabled {
				t.Fatalf("UpdateStream: %+v %v", up, err)
			}
			dup := "sa"
			if _, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Name: &dup}); !errors.Is(err, models.ErrConflict) {
				t.Fatalf("rename onto existing: %v", err)
			}
			rot, err := s.RotateStreamKey(ctx, st.ID)
			if err != nil || rot.PublishKey == st.PublishKey {
				t.Fatalf("rotate: %v", err)
			}
			app, _ := s.ApplicationByName(ctx, "other")
			if _, err := s.DeleteApplication(ctx, app.ID); !errors.Is(err, models.ErrInUse) {
				t.Fatalf("delete app in use: %v", err)
			}
			c := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRestream, Name: "yt", Enabled: true,
				Spec: models.RawJSON(`{"target":"rtmp://a.example/live2","key":"abc-123"}`)}
			if err := s.CreateTaskConfig(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteStream(ctx, st.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TaskConfigByID(ctx, st.ID, c.ID); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("config survived its stream: %v", err)
			}
			if err := s.DeleteStream(ctx, st.ID); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
		})
	}
}

// Migration 4 copies each task's cost out of its description (at least 1),
// and rolls back cleanly.
func TestMigrationTaskCostBackfill(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			f := newSchedFixture(t, s)
			// HLS tasks: migration 12 scales their costs to whole cores
			// on the way down, and back to hundredths on the way up.
			costs := map[int64]int{f.taskOf(t, "hls", 300): 3, f.taskOf(t, "hls", 0): 1, f.taskOf(t, "hls", -2): 1}
			if err := models.MigrateDownTo(s, 3); err != nil {
				t.Fatal(err)
			}
			if err := models.MigrateUpTo(s, 4); err != nil {
				t.Fatal(err)
			}
			for id, want := range costs {
				var got int
				if err := s.DB.Raw("SELECT cost FROM tasks WHERE id = ?", id).Scan(&got).Error; err != nil || got != want {
					t.Fatalf("task %d: cost %d after migration (%v), want %d", id, got, err, want)
				}
			}
			if err := models.MigrateUp(s); err != nil {
				t.Fatal(err)
			}
			// New tasks get it on create.
			id := f.taskOf(t, "hls", 5)
			var got int
			if err := s.DB.WithContext(ctx).Raw("SELECT cost FROM tasks WHERE id = ?", id).Scan(&got).Error; err != nil || got != 5 {
				t.Fatalf("new task cost %d (%v), want 5", got, err)
			}
		})
	}
}

// Migration 12 moves stored task costs from whole cores to taskcost
// units: copying tasks cost taskcost.Copy, HLS tasks their cores × 100,
// in tasks.cost and in the description alike (placement reads both); down
// restores whole cores.
func TestMigrationTaskCostUnits(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			f := newSchedFixture(t, s)
			if err := models.MigrateDownTo(s, 11); err != nil {
				t.Fatal(err)
			}
			// Tasks as version 11 stored them: a cost of 1 core per copy
			// task, an HLS ladder of 4 cores (720p30), one of 0 (stored 1).
			old := []struct {
				typ        string
				cost, want int
			}{
				{models.TypeRestream, 1, taskcost.Copy}, {models.TypeRecord, 1, taskcost.Copy}, {models.TypePull, 1, taskcost.Copy},
				{"hls", 4, 4 * taskcost.PerCore}, {"hls", 0, taskcost.PerCore},
			}
			ids := make([]int64, len(old))
			for i, o := range old {
				ids[i] = f.taskOf(t, o.typ, o.cost)
			}
			check := func(step string, want func(i int) int) {
				t.Helper()
				sched, err := s.SchedTasksByID(ctx, ids)
				if err != nil {
					t.Fatal(err)
				}
				for i, id := range ids {
					tk, err := s.TaskByID(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					w := want(i)
					if tk.Cost != w || tk.Description.Cost != w || models.PlacementOf(sched[i].Description).Cost != w {
						t.Errorf("%s: %s task %d: cost %d, description %d, placement %d; want %d", step, old[i].typ, id,
							tk.Cost, tk.Description.Cost, models.PlacementOf(sched[i].Description).Cost, w)
					}
					if tk.Description.Command != "/bin/sleep" || len(tk.Description.Args) != 1 {
						t.Errorf("%s: description of task %d lost fields: %+v", step, id, tk.Description)
					}
				}
			}
			if err := models.MigrateUp(s); err != nil {
				t.Fatal(err)
			}
			check("up", func(i int) int { return old[i].want })
			if err := models.MigrateDownTo(s, 11); err != nil {
				t.Fatal(err)
			}
			check("down", func(i int) int { return max(old[i].cost, 1) })
			if err := models.MigrateUp(s); err != nil {
				t.Fatal(err)
			}
			check("up again", func(i int) int { return old[i].want })
		})
	}
}
