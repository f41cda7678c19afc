package ui

import (
	"fmt"
	"math"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
	"github.com/portier/portier/web/views"
)

// cdnView is the cluster page's CDN card, nil without any CDN edge.
func cdnView(nodes []models.Node, state func(*models.Node) string) *views.CDN {
	has := false
	for i := range nodes {
		has = has || nodes[i].Role == models.NodeRoleCDNEdge
	}
	if !has {
		return nil
	}
	t := live.CDNTotals(nodes, state)
	v := &views.CDN{Live: len(t.Live), Egress: formatBitrate(int64(t.Egress)), Capacity: formatBitrate(int64(t.Capacity)), Desired: t.Desired()}
	for _, n := range t.Live {
		r := views.CDNEdgeRow{Name: n.Name, Egress: formatBitrate(n.Load.BitrateOut), HitPercent: int(math.Round(n.Load.HitRatio * 100)),
			Active: n.Load.ActiveRequests, Cache: formatBytes(n.Load.CacheBytes)}
		if n.Capacity > 0 {
			r.UsePercent = min(100, int(n.Load.BitrateOut/(int64(n.Capacity)*10_000)))
		}
		v.Edges = append(v.Edges, r)
	}
	return v
}

// formatBytes is a byte count for people ("" for none).
func formatBytes(n int64) string {
	switch {
	case n <= 0:
		return ""
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", max(1, n>>10))
	}
}
