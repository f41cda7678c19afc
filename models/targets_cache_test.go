package models_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/jackc/pgx/v5"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// waitTargetsUsable starts s's target cache (its listener on Postgres)
// and waits until lookups may be served from it.
func waitTargetsUsable(t *testing.T, s *models.Store) {
	t.Helper()
	s.CachedPublishTargetByName(context.Background(), "live", "warm-up")
	deadline := time.Now().Add(10 * time.Second)
	for !models.TargetsUsable(s) {
		if time.Now().After(deadline) {
			t.Fatal("the target cache did not become usable within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cachedByName and cachedByKey look up twice (the second time from the
// cache when it can) and check that both answers agree.
func cachedByName(t *testing.T, s *models.Store, app, name string) (*models.PublishTarget, error) {
	t.Helper()
	a, errA := s.CachedPublishTargetByName(context.Background(), app, name)
	b, errB := s.CachedPublishTargetByName(context.Background(), app, name)
	if !sameTarget(a, errA, b, errB) {
		t.Fatalf("%s/%s: first %+v %v, then %+v %v", app, name, a, errA, b, errB)
	}
	return b, errB
}

func cachedByKey(t *testing.T, s *models.Store, key string) (*models.PublishTarget, error) {
	t.Helper()
	a, errA := s.CachedPublishTargetByKey(context.Background(), key)
	b, errB := s.CachedPublishTargetByKey(context.Background(), key)
	if !sameTarget(a, errA, b, errB) {
		t.Fatalf("key: first %+v %v, then %+v %v", a, errA, b, errB)
	}
	return b, errB
}

func sameTarget(a *models.PublishTarget, errA error, b *models.PublishTarget, errB error) bool {
	if errA != nil || errB != nil {
		return errors.Is(errA, models.ErrNotFound) && errors.Is(errB, models.ErrNotFound)
	}
	x, y := *a, *b
	x.Live, y.Live = false, false
	return x == y
}

// TestCachedPublishTargets: cached lookups follow every kind of change at
// once, and the publish path's own writes do not clear the cache.
func TestCachedPublishTargets(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			waitTargetsUsable(t, s)

			got, err := cachedByName(t, s, "live", "show")
			if err != nil || got.StreamID != st.ID || got.PublishKey != st.PublishKey || !got.Enabled || got.AllowTakeover {
				t.Fatalf("by name: %+v %v", got, err)
			}
			if got, err := cachedByKey(t, s, st.PublishKey); err != nil || got.StreamID != st.ID || got.Name != "show" || got.App != "live" {
				t.Fatalf("by key: %+v %v", got, err)
			}

			// The publish path's writes (live flag, publish count, codec
			// info) keep the cache, and Live is never served from it.
			gen := models.TargetsGeneration(s)
			if _, err := s.AddOrigin(ctx, st.ID, "o1", time.Now(), true, &models.AuditEvent{Action: "publish.authorize"}); err != nil {
				t.Fatal(err)
			}
			report := models.StreamStatReport{App: "live", Name: "show", Publisher: true, BitrateIn: 1000}
			if err := s.UpdateNodeStreamStats(ctx, "o1", models.NodeRoleOrigin, []models.StreamStatReport{report}, time.Now(), time.Now().Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			if g := models.TargetsGeneration(s); g != gen {
				t.Fatalf("publish writes moved the generation %d -> %d", gen, g)
			}
			if got, err := cachedByName(t, s, "live", "show"); err != nil || got.Live {
				t.Fatalf("after publish: %+v %v (Live must be false)", got, err)
			}
			if _, err := s.RemoveOrigin(ctx, st.ID, "o1", nil); err != nil {
				t.Fatal(err)
			}

			// Rename (inside a transaction, as the API does).
			name := "renamed"
			if err := s.Tx(ctx, func(tx *models.Store) error {
				_, err := tx.UpdateStream(ctx, st.ID, models.StreamUpdate{Name: &name})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := cachedByName(t, s, "live", "show"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("old name after rename: %v", err)
			}
			if got, err := cachedByName(t, s, "live", "renamed"); err != nil || got.StreamID != st.ID {
				t.Fatalf("new name: %+v %v", got, err)
			}
			if got, err := cachedByKey(t, s, st.PublishKey); err != nil || got.Name != "renamed" {
				t.Fatalf("by key after rename: %+v %v", got, err)
			}

			// Key rotation: the old key is refused at once.
			rot, err := s.RotateStreamKey(ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cachedByKey(t, s, st.PublishKey); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("old key after rotation: %v", err)
			}
			if got, err := cachedByKey(t, s, rot.PublishKey); err != nil || got.StreamID != st.ID {
				t.Fatalf("new key: %+v %v", got, err)
			}
			if got, err := cachedByName(t, s, "live", "renamed"); err != nil || got.PublishKey != rot.PublishKey {
				t.Fatalf("by name after rotation: %+v %v", got, err)
			}

			// Disable, allow takeover.
			off, on := false, true
			if _, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Enabled: &off, AllowTakeover: &on}); err != nil {
				t.Fatal(err)
			}
			if got, err := cachedByKey(t, s, rot.PublishKey); err != nil || got.Enabled || !got.AllowTakeover {
				t.Fatalf("after disable: %+v %v", got, err)
			}

			// Application rename (no Store method does it yet: gorm and raw SQL).
			app, err := s.ApplicationByName(ctx, "live")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.DB.Model(&models.Application{}).Where("id = ?", app.ID).Update("name", "tv").Error; err != nil {
				t.Fatal(err)
			}
			if _, err := cachedByName(t, s, "live", "renamed"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("old app after app rename: %v", err)
			}
			if got, err := cachedByKey(t, s, rot.PublishKey); err != nil || got.App != "tv" {
				t.Fatalf("by key after app rename: %+v %v", got, err)
			}
			if err := s.DB.Exec("UPDATE applications SET name = ? WHERE id = ?", "live", app.ID).Error; err != nil {
				t.Fatal(err)
			}
			if got, err := cachedByName(t, s, "live", "renamed"); err != nil || got.App != "live" {
				t.Fatalf("after raw app rename: %+v %v", got, err)
			}

			// A stream created after a negative lookup is found.
			if _, err := cachedByName(t, s, "live", "later"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("not yet created: %v", err)
			}
			later, err := s.CreateStream(ctx, "live", "later", st.OwnerID)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cachedByName(t, s, "live", "later"); err != nil || got.StreamID != later.ID {
				t.Fatalf("created after a miss: %+v %v", got, err)
			}
			if _, err := cachedByName(t, s, "news", "first"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("new app not yet created: %v", err)
			}
			first, err := s.CreateStream(ctx, "news", "first", st.OwnerID)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cachedByName(t, s, "news", "first"); err != nil || got.StreamID != first.ID {
				t.Fatalf("created in a new app after a miss: %+v %v", got, err)
			}

			// Delete.
			if err := s.DeleteStream(ctx, st.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := cachedByName(t, s, "live", "renamed"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("by name after delete: %v", err)
			}
			if _, err := cachedByKey(t, s, rot.PublishKey); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("by key after delete: %v", err)
			}
		})
	}
}

// TestCachedTargetsFollowEveryWrite runs every Store method that writes
// streams or applications, alone and inside Store.Tx (committed and rolled
// back), and checks after each that cached lookups of every name and key
// seen so far answer what the database says.
func TestCachedTargetsFollowEveryWrite(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			u, err := s.CreateUser(ctx, "owner", "a-long-password-1", models.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			waitTargetsUsable(t, s)
			names := map[[2]string]bool{{"live", "a"}: true, {"live", "b"}: true, {"live", "c"}: true, {"other", "a"}: true, {"spare", "x"}: true}
			keys := map[string]bool{"never-a-key": true}
			var id int64 // the stream the steps change
			remember := func(st *models.Stream) {
				keys[st.PublishKey] = true
				names[[2]string{st.Application.Name, st.Name}] = true
			}
			check := func(step string) {
				t.Helper()
				for k := range names {
					want, wantErr := s.PublishTargetByName(ctx, k[0], k[1])
					got, err := s.CachedPublishTargetByName(ctx, k[0], k[1])
					if !sameTarget(want, wantErr, got, err) {
						t.Fatalf("%s: %s/%s: cached %+v %v, database %+v %v", step, k[0], k[1], got, err, want, wantErr)
					}
				}
				for k := range keys {
					want, wantErr := s.PublishTargetByKey(ctx, k)
					got, err := s.CachedPublishTargetByKey(ctx, k)
					if !sameTarget(want, wantErr, got, err) {
						t.Fatalf("%s: key: cached %+v %v, database %+v %v", step, got, err, want, wantErr)
					}
				}
			}
			b := func(v bool) *bool { return &v }
			str := func(v string) *string { return &v }
			steps := []struct {
				name string
				fn   func(s *models.Store) error
			}{
				{"create application", func(s *models.Store) error { _, err := s.CreateApplication(ctx, "spare"); return err }},
				{"ensure application", func(s *models.Store) error { _, err := s.EnsureApplication(ctx, "other"); return err }},
				{"create stream", func(s *models.Store) error {
					st, err := s.CreateStream(ctx, "live", "a", u.ID)
					if err == nil {
						id = st.ID
						remember(st)
					}
					return err
				}},
				{"create stream in a new application", func(s *models.Store) error {
					st, err := s.CreateStream(ctx, "fresh", "a", u.ID)
					if err == nil {
						remember(st)
					}
					return err
				}},
				{"rename stream", func(s *models.Store) error {
					st, err := s.UpdateStream(ctx, id, models.StreamUpdate{Name: str("b")})
					if err == nil {
						remember(st)
					}
					return err
				}},
				{"disable stream", func(s *models.Store) error {
					_, err := s.UpdateStream(ctx, id, models.StreamUpdate{Enabled: b(false)})
					return err
				}},
				{"allow takeover", func(s *models.Store) error {
					_, err := s.UpdateStream(ctx, id, models.StreamUpdate{AllowTakeover: b(true)})
					return err
				}},
				{"rotate key", func(s *models.Store) error {
					st, err := s.RotateStreamKey(ctx, id)
					if err == nil {
						remember(st)
					}
					return err
				}},
				{"delete stream", func(s *models.Store) error { return s.DeleteStream(ctx, id) }},
				{"delete application", func(s *models.Store) error {
					a, err := s.ApplicationByName(ctx, "spare")
					if err != nil {
						return err
					}
					_, err = s.DeleteApplication(ctx, a.ID)
					return err
				}},
			}
			errRollback := errors.New("roll back")
			// "rolled back" runs each step in a transaction that is rolled
			// back, then alone (the next steps need its effect). Inside a
			// transaction, lookups of the state before the commit run (and
			// are cached) after the write.
			for _, mode := range []string{"alone", "in Tx", "rolled back"} {
				for _, step := range steps {
					check(mode + ", before " + step.name) // also warms the cache
					var err error
					switch mode {
					case "alone":
						err = step.fn(s)
					default:
						err = s.Tx(ctx, func(tx *models.Store) error {
							if err := step.fn(tx); err != nil {
								return err
							}
							check(mode + ", inside " + step.name)
							if mode == "rolled back" {
								return errRollback
							}
							return nil
						})
						if errors.Is(err, errRollback) {
							check(mode + ", after " + step.name)
							err = step.fn(s)
						}
					}
					if err != nil {
						t.Fatalf("%s %s: %v", mode, step.name, err)
					}
					check(mode + ", after " + step.name)
				}
				// Start the next round from the same state.
				if err := s.DB.Exec("DELETE FROM streams").Error; err != nil {
					t.Fatal(err)
				}
				if err := s.DB.Exec("DELETE FROM applications WHERE name <> 'live'").Error; err != nil {
					t.Fatal(err)
				}
				check(mode + ", after the reset")
			}
		})
	}
}

// TestCachedTargetsConcurrent: lookups racing key rotations and renames
// never see a key that a finished rotation replaced, and every answer is
// the stream that was asked for.
func TestCachedTargetsConcurrent(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			waitTargetsUsable(t, s)
			var (
				stop    atomic.Bool
				wg      sync.WaitGroup
				retired sync.Map // keys replaced by a finished rotation
				current atomic.Value
				lookups atomic.Int64
			)
			current.Store(st.PublishKey)
			fail := make(chan string, 16)
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						key := current.Load().(string)
						_, wasRetired := retired.Load(key)
						got, err := s.CachedPublishTargetByKey(ctx, key)
						lookups.Add(1)
						switch {
						case err == nil && got.PublishKey != key:
							fail <- fmt.Sprintf("asked for one key, got the stream with another: %+v", got)
						case err == nil && wasRetired:
							fail <- "a key retired before the lookup started was accepted"
						case err != nil && !errors.Is(err, models.ErrNotFound):
							fail <- err.Error()
						}
						if lookups.Load()%256 == 0 {
							time.Sleep(time.Millisecond) // let the rotations through
						}
						if i%2 == 0 {
							if got, err := s.CachedPublishTargetByName(ctx, "live", "show"); err == nil && (got.Name != "show" || got.StreamID != st.ID) {
								fail <- fmt.Sprintf("by name: %+v", got)
							}
						}
					}
				}()
			}
			names := []string{"show", "other"}
			for i := range 40 {
				old := current.Load().(string)
				var rot *models.Stream
				err := s.Tx(ctx, func(tx *models.Store) error {
					var err error
					rot, err = tx.RotateStreamKey(ctx, st.ID)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				retired.Store(old, true)
				current.Store(rot.PublishKey)
				if _, err := s.CachedPublishTargetByKey(ctx, old); !errors.Is(err, models.ErrNotFound) {
					t.Fatalf("rotation %d: old key still found (%v)", i, err)
				}
				if got, err := s.CachedPublishTargetByKey(ctx, rot.PublishKey); err != nil || got.StreamID != st.ID {
					t.Fatalf("rotation %d: new key: %+v %v", i, got, err)
				}
				if i%10 == 0 {
					if _, err := s.UpdateStream(ctx, st.ID, models.StreamUpdate{Name: &names[(i/10+1)%2]}); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(time.Millisecond)
			}
			stop.Store(true)
			wg.Wait()
			close(fail)
			for msg := range fail {
				t.Error(msg)
			}
			t.Logf("%d concurrent lookups", lookups.Load())
		})
	}
}

// openSecondReplica opens two stores on one fresh Postgres schema (two
// control-plane replicas), or skips without Postgres.
func openSecondReplica(t *testing.T) (a, b *models.Store, dsn string) {
	t.Helper()
	dsn, ok := modelstest.Schema(t)
	if !ok {
		t.Skip("no Postgres")
	}
	for _, p := range []**models.Store{&a, &b} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s, err := models.Open(ctx, dsn)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		*p = s
	}
	return a, b, dsn
}

// TestCachedTargetsAcrossReplicas: a change through one replica reaches the
// other's cache through NOTIFY (well before the TTL).
func TestCachedTargetsAcrossReplicas(t *testing.T) {
	a, b, _ := openSecondReplica(t)
	ctx := context.Background()
	st := liveFixture(t, a)
	waitTargetsUsable(t, b)
	if _, err := cachedByKey(t, b, st.PublishKey); err != nil {
		t.Fatal(err)
	}
	if _, err := cachedByName(t, b, "live", "show"); err != nil {
		t.Fatal(err)
	}
	gen := models.TargetsGeneration(b)
	var rot *models.Stream
	if err := a.Tx(ctx, func(tx *models.Store) error {
		var err error
		rot, err = tx.RotateStreamKey(ctx, st.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 2*time.Second, "replica B refuses the old key", func() bool {
		_, err := b.CachedPublishTargetByKey(ctx, st.PublishKey)
		return errors.Is(err, models.ErrNotFound)
	})
	t.Logf("replica B refused the old key after %v", time.Since(start))
	if models.TargetsGeneration(b) == gen {
		t.Fatal("B's generation did not move: the change was not notified")
	}
	if got, err := cachedByKey(t, b, rot.PublishKey); err != nil || got.StreamID != st.ID {
		t.Fatalf("B, new key: %+v %v", got, err)
	}
	if got, err := cachedByName(t, b, "live", "show"); err != nil || got.PublishKey != rot.PublishKey {
		t.Fatalf("B, by name: %+v %v", got, err)
	}

	// A stream created on A after B cached its absence.
	if _, err := cachedByName(t, b, "live", "next"); !errors.Is(err, models.ErrNotFound) {
		t.Fatal(err)
	}
	next, err := a.CreateStream(ctx, "live", "next", st.OwnerID)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "replica B finds the new stream", func() bool {
		got, err := b.CachedPublishTargetByName(ctx, "live", "next")
		return err == nil && got.StreamID == next.ID
	})
}

// TestCachedTargetsListenerLoss: while B's listener is gone B reads the
// database, and when it is back nothing cached before survives: a change
// B was never notified of is seen once the connection is replaced.
func TestCachedTargetsListenerLoss(t *testing.T) {
	a, b, dsn := openSecondReplica(t)
	ctx := context.Background()
	st := liveFixture(t, a)
	waitTargetsUsable(t, b)
	warmed := time.Now()
	if _, err := cachedByKey(t, b, st.PublishKey); err != nil {
		t.Fatal(err)
	}

	// A change that notifies nobody (another writer than a Store).
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE streams SET publish_key = 'changed-behind-the-back' WHERE id = $1", st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CachedPublishTargetByKey(ctx, st.PublishKey); err == nil {
		t.Logf("B serves the old key from its cache, as expected of an unnotified change")
	} else if time.Since(warmed) < targetTTLForTest/2 {
		t.Fatalf("B's cache was not in use: %v", err)
	}

	u, _ := url.Parse(dsn)
	schema := u.Query().Get("search_path")
	gen := models.TargetsGeneration(b)
	var killed int
	if err := conn.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
		`LISTEN "portier_targets.`+schema+`"`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate B's listener: %d backends, %v", killed, err)
	}
	testutil.Eventually(t, 2*time.Second, "B notices its listener is gone", func() bool { return models.TargetsGeneration(b) != gen })
	if _, err := b.CachedPublishTargetByKey(ctx, st.PublishKey); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("old key after the listener was lost: %v", err)
	}
	waitTargetsUsable(t, b)
	if got, err := cachedByKey(t, b, "changed-behind-the-back"); err != nil || got.StreamID != st.ID {
		t.Fatalf("after reconnect: %+v %v", got, err)
	}
	// Notifications work again.
	if _, err := a.RotateStreamKey(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "B refuses the rotated key after the reconnect", func() bool {
		_, err := b.CachedPublishTargetByKey(ctx, "changed-behind-the-back")
		return errors.Is(err, models.ErrNotFound)
	})
}

// targetTTLForTest mirrors targetTTL (5 s).
const targetTTLForTest = 5 * time.Second

// TestCachedTargetsReadRacingWrite: an answer read before a change but
// stored after it is not served.
func TestCachedTargetsReadRacingWrite(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			waitTargetsUsable(t, s)
			models.SetTargetsAfterRead(s, func() {
				models.SetTargetsAfterRead(s, nil)
				if _, err := s.RotateStreamKey(ctx, st.ID); err != nil {
					t.Error(err)
				}
			})
			// Read with the old key, which is rotated before the answer is stored.
			if got, err := s.CachedPublishTargetByKey(ctx, st.PublishKey); err != nil || got.StreamID != st.ID {
				t.Fatalf("first lookup: %+v %v", got, err)
			}
			if _, err := s.CachedPublishTargetByKey(ctx, st.PublishKey); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("the answer read before the rotation was stored: %v", err)
			}
		})
	}
}

// TestOneListenConnection: the target cache and the scheduler's task
// channel share one LISTEN connection per store, and each gets its own
// channel's notifications.
func TestOneListenConnection(t *testing.T) {
	a, b, dsn := openSecondReplica(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := liveFixture(t, a)
	waitTargetsUsable(t, b) // B's cache subscribed
	ready := make(chan struct{})
	got := make(chan string, 4)
	go func() {
		_ = b.ListenTasksChanged(ctx, func() { close(ready) }, func(p string) { got <- p })
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("task channel subscription never ready")
	}

	u, _ := url.Parse(dsn)
	schema := u.Query().Get("search_path")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var listeners, both int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE strpos(query, $2) > 0)
		FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()`,
		`LISTEN "portier_targets.`+schema+`"`, `LISTEN "portier_tasks.`+schema+`"`).Scan(&listeners, &both); err != nil {
		t.Fatal(err)
	}
	if listeners != 1 || both != 1 {
		t.Fatalf("%d connections LISTEN on the targets channel, %d of them on the task channel too; want one for both", listeners, both)
	}

	// Each channel reaches its own subscriber.
	if err := a.NotifyTasksChanged(ctx, "from-a"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "from-a" {
			t.Fatalf("task notification payload %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task notification not delivered")
	}
	gen := models.TargetsGeneration(b)
	if _, err := a.RotateStreamKey(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "B's cache notified of the rotation", func() bool { return models.TargetsGeneration(b) != gen })
	select {
	case p := <-got:
		t.Fatalf("the task subscriber got a targets notification: %q", p)
	case <-time.After(100 * time.Millisecond):
	}
}
