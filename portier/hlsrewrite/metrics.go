package hlsrewrite

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	originFetches prometheus.Counter
	assigned      *prometheus.CounterVec
	reassigned    prometheus.Counter
	generation    prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_rewriter", Name: "requests_total",
			Help: "Viewer requests by kind (master, media, steering, bad, cors) and HTTP status."}, []string{"kind", "code"}),
		originFetches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_rewriter", Name: "origin_fetches_total",
			Help: "Playlist fetches from the HLS origin (coalesced across viewers)."}),
		assigned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_rewriter", Name: "segments_assigned_total",
			Help: "Segments frozen on each CDN edge (first sight, or re-chosen after their edge left)."}, []string{"edge"}),
		reassigned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_rewriter", Name: "segments_reassigned_total",
			Help: "Listed segments given a new edge in a new generation because theirs left the ring."}),
		generation: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_rewriter", Name: "edge_leaves_total",
			Help: "Times edges left the ring (each starts a new content-steering pathway generation)."}),
	}
}

func (m *metrics) request(kind string, code int) {
	m.requests.WithLabelValues(kind, strconv.Itoa(code)).Inc()
}

// Collectors are the rewriter's metrics, for the control plane's registry.
func (r *Rewriter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.m.requests, r.m.originFetches, r.m.assigned, r.m.reassigned, r.m.generation,
		viewersCollector{r: r, desc: prometheus.NewDesc("portier_hls_viewers", "HLS viewers of each stream, estimated from its media playlist reloads in the last 10 s.", []string{"stream"}, nil)}}
}
