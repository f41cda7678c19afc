package portier

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
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
	descCDNDesired  = prometheus.NewDesc("portier_cdn_desired_edges", "CDN edges the current egress calls for: total egress over live.CDNEdgeTarget of the mean registered capacity, rounded up, at least 1.", nil, nil)
)

func describeCDN(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCDNEgress, descCDNActive, descCDNHit, descCDNCache, descCDNCapacity, descCDNTotal, descCDNDesired} {
		ch <- d
	}
}

// collectCDN emits the CDN metrics of the live, not draining, cdn-edge
// nodes among nodes (state tells a node's state at the scrape).
func collectCDN(ch chan<- prometheus.Metric, nodes []models.Node, state func(*models.Node) string) {
	t := live.CDNTotals(nodes, state)
	for _, nd := range t.Live {
		ch <- prometheus.MustNewConstMetric(descCDNEgress, prometheus.GaugeValue, float64(nd.Load.BitrateOut), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNActive, prometheus.GaugeValue, float64(nd.Load.ActiveRequests), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNHit, prometheus.GaugeValue, nd.Load.HitRatio, nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNCache, prometheus.GaugeValue, float64(nd.Load.CacheBytes), nd.Name)
		ch <- prometheus.MustNewConstMetric(descCDNCapacity, prometheus.GaugeValue, float64(nd.Capacity)*1e6, nd.Name)
	}
	ch <- prometheus.MustNewConstMetric(descCDNTotal, prometheus.GaugeValue, t.Egress)
	ch <- prometheus.MustNewConstMetric(descCDNDesired, prometheus.GaugeValue, float64(t.Desired()))
}

// nodeStateAt is s.nodeState at a fixed time, for collectCDN.
func (s *Server) nodeStateAt(now time.Time) func(*models.Node) string {
	return func(n *models.Node) string { return s.lv.NodeState(n, now) }
}
