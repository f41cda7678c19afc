package hlsorigin

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the origin's Prometheus collectors plus the cumulative
// counters Load turns into rates.
type metrics struct {
	registry   *prometheus.Registry
	uploads    *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	bytesIn    prometheus.Counter
	bytesOut   prometheus.Counter
	deletions  prometheus.Counter
	storageErr prometheus.Counter

	nUploads, nIn, nOut, nErr atomic.Int64

	mu       sync.Mutex // guards last and lastAt (Load)
	last     [3]int64
	lastAt   time.Time
	lastRate Load
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.uploads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "uploads_total",
		Help: "PUT and DELETE requests by kind (segment, playlist, delete) and result (ok, unauthorized, forbidden, fenced, exists, bad_request, missing_segment, listed, sequence, too_large, storage_error)."}, []string{"kind", "result"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "upload_seconds",
		Help:    "Time from the start of an accepted PUT to its object being stored, by kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 4, 8}}, []string{"kind"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "bytes_in_total", Help: "Bytes stored from uploads."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "bytes_out_total", Help: "Bytes of objects served to readers."})
	m.deletions = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "retention_deletions_total", Help: "Objects deleted by retention."})
	m.storageErr = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portier", Subsystem: "hls_origin", Name: "storage_errors_total", Help: "Failed backend operations."})
	m.registry.MustRegister(m.uploads, m.latency, m.bytesIn, m.bytesOut, m.deletions, m.storageErr)
	return m
}

func (m *metrics) upload(kind, result string) {
	m.uploads.WithLabelValues(kind, result).Inc()
	if result == "ok" {
		m.nUploads.Add(1)
	}
}

func (m *metrics) in(n int64)  { m.bytesIn.Add(float64(n)); m.nIn.Add(n) }
func (m *metrics) out(n int64) { m.bytesOut.Add(float64(n)); m.nOut.Add(n) }
func (m *metrics) storageError() {
	m.storageErr.Inc()
	m.nErr.Add(1)
}

// Load is the origin's load for heartbeats: rates since the previous call.
type Load struct {
	Streams          int
	UploadsPerSecond float64
	BitrateIn        int64 // bits per second
	BitrateOut       int64 // bits per second
	StorageErrors    int64 // since start
}

func (m *metrics) load(now time.Time) Load {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := [3]int64{m.nUploads.Load(), m.nIn.Load(), m.nOut.Load()}
	if !m.lastAt.IsZero() {
		if d := now.Sub(m.lastAt).Seconds(); d >= 0.1 {
			m.lastRate = Load{UploadsPerSecond: float64(cur[0]-m.last[0]) / d,
				BitrateIn: int64(float64(cur[1]-m.last[1]) * 8 / d), BitrateOut: int64(float64(cur[2]-m.last[2]) * 8 / d)}
		} else {
			return withErrs(m.lastRate, m.nErr.Load())
		}
	}
	m.last, m.lastAt = cur, now
	return withErrs(m.lastRate, m.nErr.Load())
}

func withErrs(l Load, n int64) Load { l.StorageErrors = n; return l }
