package live

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// liveMetrics are the hook collectors: decisions by dialect, action and
// result, and decision latency. They belong to one Server (tests build many),
// so they are not registered globally: see HookCollectors.
type liveMetrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func newLiveMetrics() *liveMetrics {
	return &liveMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portier_hook_decisions_total",
			Help: "Publish and play authorisation decisions by dialect, action and result (allowed, denied, error).",
		}, []string{"dialect", "action", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portier_hook_decision_seconds",
			Help:    "Time to take a publish or play authorisation Decision, by dialect and action.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"dialect", "action"}),
	}
}

func (m *liveMetrics) observe(dialect, action string, d Decision, took time.Duration) {
	res := "allowed"
	if !d.Allow {
		res = "denied"
		if d.Code == CodeUnavailable {
			res = "error"
		}
	}
	m.decisions.WithLabelValues(dialect, action, res).Inc()
	m.latency.WithLabelValues(dialect, action).Observe(took.Seconds())
}

// Collectors are the hook metrics of this live state, for the registry
// that serves /metrics.
func (l *State) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.metrics.decisions, l.metrics.latency}
}
