package live

import (
	"math"

	"github.com/portier/portier/models"
)

// The load of the CDN edges, as their heartbeats report it: the control
// plane's metrics export it for an autoscaler and the UI's cluster page
// shows it.

// CDNEdgeTarget is the share of its registered capacity an edge is meant to
// run at: the rest is headroom for the rewriter's bounded-load spill (c =
// 1.25) and for an edge lost before the autoscaler adds one.
const CDNEdgeTarget = 0.7

// CDNLoad is the live CDN edges and their totals.
type CDNLoad struct {
	Live     []*models.Node
	Egress   float64 // bit/s
	Capacity float64 // bit/s, registered
}

// Desired is DesiredEdges of the totals.
func (t CDNLoad) Desired() int { return DesiredEdges(t.Egress, t.Capacity, len(t.Live)) }

// CDNTotals picks the live (alive, not draining) cdn-edge nodes.
func CDNTotals(nodes []models.Node, state func(*models.Node) string) CDNLoad {
	var t CDNLoad
	for i := range nodes {
		nd := &nodes[i]
		if nd.Role != models.NodeRoleCDNEdge || state(nd) != "alive" {
			continue
		}
		t.Live = append(t.Live, nd)
		t.Egress += float64(nd.Load.BitrateOut)
		t.Capacity += float64(nd.Capacity) * 1e6 // registered in Mbit/s
	}
	return t
}

// DesiredEdges is how many edges of the live ones' mean capacity carry
// egress at CDNEdgeTarget of their capacity: at least 1, and the live count
// when nothing is known of capacity.
func DesiredEdges(egress, capSum float64, live int) int {
	if live == 0 || capSum <= 0 {
		return max(1, live)
	}
	per := CDNEdgeTarget * capSum / float64(live)
	return max(1, int(math.Ceil(egress/per-1e-9))) // not one more for a rounding error
}
