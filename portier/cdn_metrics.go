package portier

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/models"
	"github.com/portier/portier/web/views"
)

// CDN edge metrics: each live edge's load as its heartbeats report it, and
// the number of edges the current egress calls for, which an autoscaler
// (deploy/kubernetes: the cdn-edge HorizontalPodAutoscaler) follows.
var (
	descCDNEgress   = prometheus.NewDesc("portier_cdn_node_egress_bits_per_second", "Egress of each live CDN edge, from its heartbeats.", []string{"edge"}, nil)
	descCDNActive   = prometheus.NewDesc("portier_cdn_node_active_requests", "Requests in flight on each live CDN edge.", []string{"edge"}, nil)
	descCDNHit      = prometheus.NewDesc("portier_cdn_node_hit_ratio", "Share of each live CDN edge's requests served without an origin fetch of their own, since its previous heartbeat.", []string{"edge"}, nil)
	descCDNCache    = prometheus.NewDesc("portier_cdn_node_cache_bytes", "Bytes in each live CDN edge's memory cache.", []string{"edge"}, nil)
	descCDNCapacity = prometheus.NewDesc("portier_cdn_node_capacity_bits_per_second", "Egress capacity each live CDN edge registered (--capacity).", []string{"edge"}, nil)
	descCDNTotal    = prometheus.NewDesc("portier_cdn_egress_bits_per_second", "Egress of all live CDN edges together.", nil, nil)
	descCDNDesired  = prometheus.NewDesc("portier_cdn_desired_edges", "CDN edges the current egress calls for: total egress over CDNEdgeTarget of the mean registered capacity, rounded up, at least 1.", nil, nil)
)

// CDNEdgeTarget is the share of its registered capacity an edge is meant to
// run at: the rest is headroom for the rewriter's bounded-load spill (c =
// 1.25) and for an edge lost before the autoscaler adds one.
const CDNEdgeTarget = 0.7

func describeCDN(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCDNEgress, descCDNActive, descCDNHit, descCDNCache, descCDNCapacity, descCDNTotal, descCDNDesired} {
		ch <- d
	}
}

// collectCDN emits the CDN metrics of the live, not draining, cdn-edge
// nodes among nodes (state tells a node's state at the scrape).
func collectCDN(ch chan<- prometheus.Metric, nodes []models.Node, state func(*models.Node) string) {
	t := cdnTotals(nodes, state)
	for _, nd := range t.live {
		ch <- prometheus.MustNewConstMetric(descCDNEgress, prometheus.GaugeValue, float64(nd.Load.BitrateOut), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNActive, prometheus.GaugeValue, float64(nd.Load.ActiveRequests), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNHit, prometheus.GaugeValue, nd.Load.HitRatio, nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNCache, prometheus.GaugeValue, float64(nd.Load.CacheBytes), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNCapacity, prometheus.GaugeValue, float64(nd.Capacity)*1e6, nd.Name)
	}
	ch <- prometheus.MustNewConstMetric(descCDNTotal, prometheus.GaugeValue, t.egress)
	ch <- prometheus.MustNewConstMetric(descCDNDesired, prometheus.GaugeValue, float64(t.desired()))
}

// cdnLoad is the live CDN edges and their totals.
type cdnLoad struct {
	live     []*models.Node
	egress   float64 // bit/s
	capacity float64 // bit/s, registered
}

// desired is desiredEdges of the totals.
func (t cdnLoad) desired() int { return desiredEdges(t.egress, t.capacity, len(t.live)) }

// cdnTotals picks the live (alive, not draining) cdn-edge nodes.
func cdnTotals(nodes []models.Node, state func(*models.Node) string) cdnLoad {
	var t cdnLoad
	for i := range nodes {
		nd := &nodes[i]
		if nd.Role != models.NodeRoleCDNEdge || state(nd) != "alive" {
			continue
		}
		t.live = append(t.live, nd)
		t.egress += float64(nd.Load.BitrateOut)
		t.capacity += float64(nd.Capacity) * 1e6 // registered in Mbit/s
	}
	return t
}

// desiredEdges is how many edges of the live ones' mean capacity carry
// egress at CDNEdgeTarget of their capacity: at least 1, and the live count
// when nothing is known of capacity.
func desiredEdges(egress, capSum float64, live int) int {
	if live == 0 || capSum <= 0 {
		return max(1, live)
	}
	per := CDNEdgeTarget * capSum / float64(live)
	return max(1, int(math.Ceil(egress/per-1e-9))) // not one more for a rounding error
}

// nodeStateAt is s.nodeState at a fixed time, for collectCDN.
func (s *Server) nodeStateAt(now time.Time) func(*models.Node) string {
	return func(n *models.Node) string { return s.lv.NodeState(n, now) }
}

// cdnView is the cluster page's CDN card, nil without any CDN edge.
func cdnView(nodes []models.Node, state func(*models.Node) string) *views.CDN {
	has := false
	for i := range nodes {
		has = has || nodes[i].Role == models.NodeRoleCDNEdge
	}
	if !has {
		return nil
	}
	t := cdnTotals(nodes, state)
	v := &views.CDN{Live: len(t.live), Egress: formatBitrate(int64(t.egress)), Capacity: formatBitrate(int64(t.capacity)), Desired: t.desired()}
	for _, n := range t.live {
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
