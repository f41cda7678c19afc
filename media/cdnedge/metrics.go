package cdnedge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the edge's Prometheus collectors plus the counters Load turns
// into rates.
type metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	bytesOut    prometheus.Counter
	originBytes prometheus.Counter
	fetches     *prometheus.HistogramVec
	coalesced   prometheus.Counter
	activeG     prometheus.GaugeFunc
	cacheBytes  prometheus.GaugeFunc
	cacheCap    prometheus.Gauge

	results map[string]prometheus.Counter // requests by result, resolved once

	active              atomic.Int64
	nOut, nHit, nServed atomic.Int64

	mu       sync.Mutex // guards last, lastAt, lastRate (load)
	last     [3]int64
	lastAt   time.Time
	lastRate Load
}

func newMetrics(cacheBytes func() float64, capacity float64) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "requests_total",
		Help: "Viewer requests by result: hit (memory), disk_hit, stale (a playlist served while it refreshes), coalesced (joined a fill in flight), miss (started an origin fetch), error, denied (signature), bad_request."}, []string{"result"})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "bytes_out_total", Help: "Body bytes sent to viewers."})
	m.originBytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "origin_bytes_total", Help: "Body bytes fetched from origins."})
	m.fetches = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "origin_fetch_seconds",
		Help:    "Time from an origin request to its response headers, by status (200, 304, 404, …, or error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"status"})
	m.coalesced = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "coalesced_waiters_total",
		Help: "Viewer requests that joined another request's origin fetch instead of starting their own."})
	m.activeG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "active_requests", Help: "Viewer requests in progress."},
		func() float64 { return float64(m.active.Load()) })
	m.cacheBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "cache_bytes", Help: "Bytes held by the cache."}, cacheBytes)
	m.cacheCap = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "portier", Subsystem: "cdn_edge", Name: "cache_capacity_bytes", Help: "The cache's bound."})
	m.cacheCap.Set(capacity)
	m.registry.MustRegister(m.collectors()...)
	m.results = map[string]prometheus.Counter{}
	for _, r := range []string{resultHit, resultDiskHit, resultStale, resultCoalesced, resultMiss, resultError, resultDenied, resultBad} {
		m.results[r] = m.requests.WithLabelValues(r)
	}
	return m
}

func (m *metrics) byResult(r string) prometheus.Counter {
	if c, ok := m.results[r]; ok {
		return c
	}
	return m.requests.WithLabelValues(r)
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.bytesOut, m.originBytes, m.fetches, m.coalesced, m.activeG, m.cacheBytes, m.cacheCap}
}

func (m *metrics) request(result string) {
	m.byResult(result).Inc()
	switch result {
	case resultCoalesced:
		m.coalesced.Inc()
		fallthrough
	case resultHit, resultDiskHit, resultStale:
		m.nHit.Add(1)
		m.nServed.Add(1)
	case resultMiss:
		m.nServed.Add(1)
	}
}

func (m *metrics) out(n int64) { m.bytesOut.Add(float64(n)); m.nOut.Add(n) }

func (m *metrics) originFetch(status string, d time.Duration) {
	m.fetches.WithLabelValues(status).Observe(d.Seconds())
}

// Load is the edge's load for heartbeats.
type Load struct {
	ActiveRequests     int
	BitrateOut         int64   // egress, bits per second since the previous call
	HitRatio           float64 // served without an origin fetch of their own, since the previous call
	CacheBytes         int64
	CacheCapacityBytes int64
	CachedObjects      int
	DiskBytes          int64 // the disk tier, when there is one
	DiskCapacityBytes  int64
	DiskObjects        int
}

func (m *metrics) load(now time.Time) Load {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := [3]int64{m.nOut.Load(), m.nHit.Load(), m.nServed.Load()}
	if !m.lastAt.IsZero() {
		if d := now.Sub(m.lastAt).Seconds(); d >= 0.1 {
			m.lastRate = Load{BitrateOut: int64(float64(cur[0]-m.last[0]) * 8 / d)}
			if served := cur[2] - m.last[2]; served > 0 {
				m.lastRate.HitRatio = float64(cur[1]-m.last[1]) / float64(served)
			}
			m.last, m.lastAt = cur, now
		}
	} else {
		m.last, m.lastAt = cur, now
	}
	l := m.lastRate
	l.ActiveRequests = int(m.active.Load())
	return l
}
