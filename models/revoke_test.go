package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// Publishes are numbered per stream; a publish is attached only while its
// key is the stream's and the stream is enabled; a revocation takes the
// stream offline and keeps every publish numbered so far from coming back;
// the end of an older publish does not remove a newer one.
func TestPublishIdentityAndRevocation(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			now := time.Now().UTC()
			add := func(p models.Publish) (bool, int64, error) {
				p.StreamID, p.Now = st.ID, now
				return s.AddPublish(ctx, p)
			}
			live := func() bool {
				got, err := s.StreamByID(ctx, st.ID)
				if err != nil {
					t.Fatal(err)
				}
				return got.Live
			}
			went, p1, err := add(models.Publish{Node: "o1", New: true, Key: st.PublishKey, RequireEnabled: true})
			if err != nil || !went || p1 != 1 {
				t.Fatalf("first publish: went=%v id=%d err=%v", went, p1, err)
			}
			_, p2, err := add(models.Publish{Node: "o2", New: true, Key: st.PublishKey, RequireEnabled: true})
			if err != nil || p2 != 2 {
				t.Fatalf("second publish: id=%d err=%v", p2, err)
			}
			if os, _ := s.StreamOrigins(ctx, st.ID); len(os) != 2 || os[0].PublishID+os[1].PublishID != 3 {
				t.Fatalf("origins record their publish ids: %+v", os)
			}
			// A key that is no longer the stream's (a rotation won the race).
			var rv *models.RevokedError
			if _, _, err := add(models.Publish{Node: "o3", New: true, Key: "old-key", RequireEnabled: true}); !errors.As(err, &rv) || rv.Reason != models.RevokeKeyRotated {
				t.Fatalf("stale key: %v", err)
			}

			// Revoke: offline at once, both origins gone, both publishes revoked.
			removed, off, err := s.RevokePublishes(ctx, st.ID, models.RevokeDisabled, func(o models.StreamOrigin) *models.AuditEvent {
				return &models.AuditEvent{Action: "publish.revoke", Node: o.NodeName}
			})
			if err != nil || !off || len(removed) != 2 || live() {
				t.Fatalf("revoke: removed %+v off=%v err=%v live=%v", removed, off, err, live())
			}
			if evs, _, _ := s.ListAudit(ctx, models.AuditFilter{Action: "publish.revoke"}); len(evs) != 2 {
				t.Fatalf("revoke audit events: %d, want one per origin", len(evs))
			}
			for _, pid := range []int64{p1, p2} {
				if _, _, err := add(models.Publish{Node: "o1", PublishID: pid, RequireEnabled: true}); !errors.As(err, &rv) || rv.Reason != models.RevokeDisabled {
					t.Fatalf("reported revoked publish %d: %v", pid, err)
				}
			}
			revs, err := s.StreamRevocations(ctx, []int64{st.ID, st.ID + 1000})
			if err != nil || len(revs) != 1 || revs[st.ID].Revoked(p2) != models.RevokeDisabled || revs[st.ID].Revoked(p2+1) != "" {
				t.Fatalf("revocations: %+v %v", revs, err)
			}
			// A new publish after the revocation is numbered above it and attaches.
			_, p3, err := add(models.Publish{Node: "o1", New: true, Key: st.PublishKey, RequireEnabled: true})
			if err != nil || p3 != 3 || !live() {
				t.Fatalf("publish after the revocation: id=%d err=%v live=%v", p3, err, live())
			}
			// The late end of publish 1 on o1 leaves publish 3 there.
			if off, err := s.RemovePublishOrigin(ctx, st.ID, "o1", p1, nil); err != nil || off || !live() {
				t.Fatalf("late end of an older publish: off=%v err=%v live=%v", off, err, live())
			}
			if off, err := s.RemovePublishOrigin(ctx, st.ID, "o1", p3, nil); err != nil || !off || live() {
				t.Fatalf("end of the current publish: off=%v err=%v live=%v", off, err, live())
			}
		})
	}
}

// Authorisations with the old key racing a key rotation: every publish
// that got in is either revoked by the rotation or was checked against the
// new key; none with the old key survives it (both databases).
func TestRevocationRacesAuthorisation(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			oldKey := st.PublishKey
			const publishers = 8
			type result struct{ in, refused int }
			results := make(chan result, publishers)
			firstIn := make(chan struct{}, 1)
			for i := range publishers {
				go func() {
					var r result
					defer func() { results <- r }()
					// Publish again and again with the old key until refused.
					for range 500 {
						_, _, err := s.AddPublish(ctx, models.Publish{StreamID: st.ID, Node: "o" + string(rune('a'+i)), Now: time.Now(),
							New: true, Key: oldKey, RequireEnabled: true})
						switch {
						case err == nil:
							r.in++
							select {
							case firstIn <- struct{}{}:
							default:
							}
						case errors.Is(err, models.ErrRevoked):
							r.refused++
							return
						default:
							t.Errorf("publish: %v", err)
							return
						}
					}
				}()
			}
			<-firstIn // rotate while the publishers run
			err := s.Tx(ctx, func(tx *models.Store) error {
				if _, err := tx.RotateStreamKey(ctx, st.ID); err != nil {
					return err
				}
				_, _, err := tx.RevokePublishes(ctx, st.ID, models.RevokeKeyRotated, nil)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var total result
			for range publishers {
				r := <-results
				total.in += r.in
				total.refused += r.refused
			}
			got, _ := s.StreamByID(ctx, st.ID)
			origins, _ := s.StreamOrigins(ctx, st.ID)
			if len(origins) != 0 || got.Live || total.refused != publishers {
				t.Fatalf("old-key publishes after the rotation: origins %+v, live %v, %d refused (want %d)", origins, got.Live, total.refused, publishers)
			}
			t.Logf("%d old-key publishes got in before the rotation (all revoked), %d refused after it", total.in, total.refused)
		})
	}
}
