package models_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestAddOriginGroupCommit: concurrent AddOrigin calls share transactions,
// yet each returns only after its own origin and audit event are stored,
// exactly one call per stream sees it go live, and a call for a deleted
// stream fails alone.
func TestAddOriginGroupCommit(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			u, err := s.CreateUser(ctx, "owner", "a-long-password-1", models.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			const streams, nodes = 8, 6
			ids := make([]int64, streams)
			for i := range ids {
				st, err := s.CreateStream(ctx, "live", fmt.Sprintf("s%d", i), u.ID)
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = st.ID
			}
			gone, err := s.CreateStream(ctx, "live", "gone", u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.DB.Exec("DELETE FROM streams WHERE id = ?", gone.ID).Error; err != nil {
				t.Fatal(err)
			}
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				lives  = map[int64]int{}
				goneEr error
			)
			for _, id := range append(ids, gone.ID) {
				for j := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ev := &models.AuditEvent{Action: "publish.authorize", Object: models.StreamObject(id)}
						went, err := s.AddOrigin(ctx, id, fmt.Sprintf("n%d", j), time.Now(), true, ev)
						mu.Lock()
						defer mu.Unlock()
						if id == gone.ID {
							goneEr = err
							return
						}
						if err != nil {
							t.Error(err)
						}
						if went {
							lives[id]++
						}
						if ev.ID == 0 {
							t.Errorf("stream %d: audit event not stored before return", id)
						}
					}()
				}
			}
			wg.Wait()
			if !errors.Is(goneEr, models.ErrNotFound) {
				t.Fatalf("deleted stream: %v, want ErrNotFound", goneEr)
			}
			for _, id := range ids {
				if lives[id] != 1 {
					t.Errorf("stream %d went live %d times, want 1", id, lives[id])
				}
				got, err := s.StreamByID(ctx, id)
				if err != nil || !got.Live || got.PublishCount != nodes {
					t.Errorf("stream %d: %+v %v", id, got, err)
				}
				origins, _ := s.StreamOrigins(ctx, id)
				if len(origins) != nodes {
					t.Errorf("stream %d: %d origins, want %d", id, len(origins), nodes)
				}
			}
			// Repeated publishes from a node that holds the stream (the
			// same origin row several times in one batch) count each
			// publish and keep one origin per node.
			const again = 3
			for _, id := range ids {
				for range again {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ev := &models.AuditEvent{Action: "publish.authorize", Object: models.StreamObject(id)}
						if went, err := s.AddOrigin(ctx, id, "n0", time.Now(), true, ev); err != nil || went {
							t.Errorf("stream %d again: went live %v, %v", id, went, err)
						}
					}()
				}
			}
			wg.Wait()
			for _, id := range ids {
				got, err := s.StreamByID(ctx, id)
				if err != nil || got.PublishCount != nodes+again {
					t.Errorf("stream %d: publish count %d (%v), want %d", id, got.PublishCount, err, nodes+again)
				}
				if origins, _ := s.StreamOrigins(ctx, id); len(origins) != nodes {
					t.Errorf("stream %d: %d origins after repeats, want %d", id, len(origins), nodes)
				}
			}
			_, total, err := s.ListAudit(ctx, models.AuditFilter{Action: "publish.authorize"})
			if want := int64(streams * (nodes + again)); err != nil || total != want {
				t.Fatalf("audit events %d (%v), want %d", total, err, want)
			}
		})
	}
}
