package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestClaimLostNodes: a node that stopped heartbeating is claimed lost
// once; one that left or drains is not; one that came back and stopped
// again is lost again.
func TestClaimLostNodes(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			t0 := time.Now().UTC().Truncate(time.Second)
			for _, n := range []struct{ name, role string }{{"edge-1", models.NodeRoleEdge}, {"c1", models.NodeRoleConcierge}, {"gone", models.NodeRoleOrigin}, {"draining", models.NodeRoleConcierge}} {
				if _, err := s.RegisterNode(ctx, models.Node{Name: n.name, Role: n.role}, t0); err != nil {
					t.Fatal(err)
				}
			}
			if ok, err := s.ReleaseNode(ctx, models.Node{Name: "gone", Role: models.NodeRoleOrigin}); err != nil || !ok {
				t.Fatalf("release: %v %v", ok, err)
			}
			if err := s.DB.Exec("UPDATE nodes SET draining = ? WHERE name = ?", true, "draining").Error; err != nil {
				t.Fatal(err)
			}
			if err := s.NodeHeartbeat(ctx, "c1", models.NodeLoad{}, t0.Add(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			lost, err := s.ClaimLostNodes(ctx, t0.Add(5*time.Second), t0.Add(6*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if len(lost) != 1 || lost[0].Name != "edge-1" || lost[0].Role != models.NodeRoleEdge || !lost[0].LastHeartbeat.Equal(t0) {
				t.Fatalf("lost %+v; want edge-1 alone", lost)
			}
			if lost, _ := s.ClaimLostNodes(ctx, t0.Add(7*time.Second), t0.Add(8*time.Second)); len(lost) != 0 {
				t.Fatalf("claimed twice: %+v", lost)
			}
			// edge-1 comes back, then stops again: lost again.
			if err := s.NodeHeartbeat(ctx, "edge-1", models.NodeLoad{}, t0.Add(20*time.Second)); err != nil {
				t.Fatal(err)
			}
			lost, _ = s.ClaimLostNodes(ctx, t0.Add(30*time.Second), t0.Add(31*time.Second))
			if len(lost) != 2 || lost[0].Name != "c1" || lost[1].Name != "edge-1" {
				t.Fatalf("lost %+v; want c1 and edge-1", lost)
			}
		})
	}
}
