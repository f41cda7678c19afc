package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// A node is identified by its name: a live node's name cannot be claimed by
// a node of another role, address or host; the same node re-registers; a
// dead node's name is free; of concurrent claims exactly one wins.
func TestClaimNodeName(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			now := time.Now().UTC().Truncate(time.Millisecond)
			alive := func(at time.Time) time.Time { return at.Add(-3 * time.Second) }
			origin := models.Node{Name: "studio-1", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935", HTTPAddress: "127.0.0.1:8081", Host: "studio-1"}
			if _, err := s.ClaimNode(ctx, origin, now, alive(now)); err != nil {
				t.Fatalf("first claim: %v", err)
			}

			// Another role on the same host, same name: refused, naming the holder.
			edge := models.Node{Name: "studio-1", Role: models.NodeRoleEdge, RTMPAddress: "127.0.0.1:1936", HTTPAddress: "127.0.0.1:8083", Host: "studio-1"}
			_, err := s.ClaimNode(ctx, edge, now.Add(time.Second), alive(now.Add(time.Second)))
			var nt *models.NameTakenError
			if !errors.As(err, &nt) || !errors.Is(err, models.ErrConflict) {
				t.Fatalf("clash: %v, want a NameTakenError", err)
			}
			if nt.Holder.Role != models.NodeRoleOrigin || nt.Holder.RTMPAddress != "127.0.0.1:1935" {
				t.Fatalf("clash names holder %+v", nt.Holder)
			}
			for _, want := range []string{`"studio-1"`, "origin", "127.0.0.1:1935", "--name"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("clash message %q does not mention %s", err, want)
				}
			}
			// Same role, other address, or other host: also another node.
			for _, other := range []models.Node{
				{Name: "studio-1", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1937", HTTPAddress: "127.0.0.1:8081", Host: "studio-1"},
				{Name: "studio-1", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935", HTTPAddress: "127.0.0.1:8081", Host: "studio-2"},
			} {
				if _, err := s.ClaimNode(ctx, other, now.Add(time.Second), alive(now.Add(time.Second))); !errors.As(err, &nt) {
					t.Fatalf("claim by %+v: %v, want refused", other, err)
				}
			}
			got, err := s.NodeByName(ctx, "studio-1")
			if err != nil || got.Role != models.NodeRoleOrigin || got.RTMPAddress != "127.0.0.1:1935" {
				t.Fatalf("the refused claims changed the node: %+v %v", got, err)
			}

			// A restart of the same node re-registers at once, and updates what may change.
			re := origin
			re.Capacity, re.Version = 7, "v2"
			got, err = s.ClaimNode(ctx, re, now.Add(2*time.Second), alive(now.Add(2*time.Second)))
			if err != nil || got.Capacity != 7 || got.Version != "v2" || !got.RegisteredAt.Equal(now.Add(2*time.Second)) {
				t.Fatalf("restart: %+v %v", got, err)
			}

			// A release by another identity does nothing; the node's own
			// release (a clean shutdown) frees the name at once.
			if ok, err := s.ReleaseNode(ctx, edge); err != nil || ok {
				t.Fatalf("release by another node: %v %v", ok, err)
			}
			if ok, err := s.ReleaseNode(ctx, origin); err != nil || !ok {
				t.Fatalf("release: %v %v", ok, err)
			}
			if _, err := s.ClaimNode(ctx, edge, now.Add(2*time.Second), alive(now.Add(2*time.Second))); err != nil {
				t.Fatalf("claim of a released name: %v", err)
			}
			if _, err := s.ClaimNode(ctx, re, now.Add(2*time.Second), alive(now.Add(2*time.Second))); !errors.As(err, &nt) {
				t.Fatalf("the released node claims its name back from the live edge: %v", err)
			}
			// Once the holder missed its heartbeats, its name can be taken over.
			later := now.Add(2*time.Second + 3*time.Second + time.Millisecond)
			got, err = s.ClaimNode(ctx, origin, later, alive(later))
			if err != nil || got.Role != models.NodeRoleOrigin || got.RTMPAddress != "127.0.0.1:1935" {
				t.Fatalf("takeover of a dead node's name: %+v %v", got, err)
			}

			// Concurrent claims of one free name by different nodes: one wins.
			const claimers = 8
			var wg sync.WaitGroup
			errs := make([]error, claimers)
			for i := range claimers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := models.Node{Name: "race", Role: models.NodeRoleOrigin, RTMPAddress: fmt.Sprintf("10.0.0.%d:1935", i+1), Host: fmt.Sprintf("h%d", i)}
					_, errs[i] = s.ClaimNode(ctx, c, now, alive(now))
				}()
			}
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.As(err, &nt):
				default:
					t.Errorf("claimer %d: %v", i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d concurrent claims of one name won, want exactly 1 (errors %v)", wins, errs)
			}
		})
	}
}
