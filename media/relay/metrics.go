package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portier/portier/media/edge"
	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/stream"
)

// metrics is the relay's Prometheus collector. Gauges and counters are read
// from the hub and the edge at scrape time (no second bookkeeping); the
// hook latency histogram and the forwarding counters are the relay's own.
type metrics struct {
	role, node string
	totals     func() stream.Totals  // the hub's, with RTSP sessions as players
	udpDrops   func() (uint64, bool) // the RTSP server's UDP socket drops, if known
	edge       *edge.Edge            // nil on origins
	rates      *rates

	rtp          *rtpCollector
	hookLatency  *prometheus.HistogramVec
	forwarding   atomic.Int64
	forwarded    atomic.Uint64
	refusals     atomic.Uint64
	descs        map[string]*prometheus.Desc
	constLabels  prometheus.Labels
	registryOnce sync.Once
	registry     *prometheus.Registry
}

func newMetrics(role, node string, totals func() stream.Totals, e *edge.Edge, r *rates, flows func() []rtp.Flow) *metrics {
	m := &metrics{role: role, node: node, totals: totals, edge: e, rates: r, rtp: newRTPCollector("portier", flows),
		constLabels: prometheus.Labels{"role": role, "node": node}}
	m.hookLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "portier", Subsystem: "relay", Name: "control_call_seconds",
		Help:        "Latency of calls to the control plane (publish/play authorisation, directory, heartbeats) by operation.",
		Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		ConstLabels: m.constLabels,
	}, []string{"op"})
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("portier_relay_"+name, help, nil, m.constLabels)
	}
	m.descs = map[string]*prometheus.Desc{
		"streams":           d("streams", "Streams known to the hub."),
		"publishers":        d("publishers", "Streams with a publisher attached (encoders, or the edge's upstream)."),
		"players":           d("players", "Players connected (each RTSP session is one)."),
		"bytes_in":          d("bytes_in_total", "Media bytes received from publishers."),
		"bytes_out":         d("bytes_out_total", "Media bytes delivered to players."),
		"bitrate_in":        d("bitrate_in_bps", "Incoming media bitrate, bits per second."),
		"bitrate_out":       d("bitrate_out_bps", "Outgoing media bitrate, bits per second."),
		"skips":             d("player_skips_total", "Times a slow player skipped to the next keyframe."),
		"drops":             d("player_drops_total", "Slow players disconnected for falling behind."),
		"publishes":         d("publishes_total", "Publishes accepted by the hub."),
		"upstream_sessions": d("upstream_sessions", "Upstream sessions from this edge to origins, open now."),
		"upstream_started":  d("upstream_sessions_started_total", "Upstream sessions started by this edge."),
		"failovers":         d("upstream_failovers_total", "Switches of an upstream to another origin while players stayed connected."),
		"ended_no_origin":   d("upstream_ended_no_origin_total", "Streams ended for players because no origin had them."),
		"loops_refused":     d("upstream_loops_refused_total", "Upstreams refused before dialling: this relay's own address, or a node that is not an origin."),
		"loops_ended":       d("upstream_loops_ended_total", "Upstream sessions ended for delivering media faster than real time (a loop)."),
		"forwarding":        d("forwarded_publishes", "Publishes forwarded from this edge to an origin, now."),
		"forwarded":         d("forwarded_publishes_total", "Publishes forwarded from this edge to an origin."),
		"refusals":          d("publish_refusals_total", "Publishes refused (by the control plane or, for an edge, by the origin)."),
		"rtsp_udp_drops":    d("rtsp_udp_socket_drops_total", "UDP datagrams the kernel dropped on the RTSP server's sockets because their receive buffer was full (Linux)."),
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
	m.hookLatency.Describe(ch)
	m.rtp.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	t := m.totals()
	in, out := m.rates.get()
	g := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v)
	}
	c := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, v)
	}
	g("streams", float64(t.Streams))
	g("publishers", float64(t.Publishers))
	g("players", float64(t.Readers))
	c("bytes_in", float64(t.BytesIn))
	c("bytes_out", float64(t.BytesOut))
	g("bitrate_in", float64(in))
	g("bitrate_out", float64(out))
	c("skips", float64(t.Skips))
	c("drops", float64(t.Drops))
	c("publishes", float64(t.Publishes))
	var es edge.Stats
	if m.edge != nil {
		es = m.edge.Stats()
	}
	g("upstream_sessions", float64(es.UpstreamSessions))
	c("upstream_started", float64(es.SessionsStarted))
	c("failovers", float64(es.Failovers))
	c("ended_no_origin", float64(es.EndedNoOrigin))
	c("loops_refused", float64(es.LoopsRefused))
	c("loops_ended", float64(es.LoopsEnded))
	g("forwarding", float64(m.forwarding.Load()))
	c("forwarded", float64(m.forwarded.Load()))
	c("refusals", float64(m.refusals.Load()))
	if m.udpDrops != nil {
		if d, ok := m.udpDrops(); ok {
			c("rtsp_udp_drops", float64(d))
		}
	}
	m.hookLatency.Collect(ch)
	m.rtp.Collect(ch)
}

// observe records one control-plane call.
func (m *metrics) observe(op string, d time.Duration) {
	m.hookLatency.WithLabelValues(op).Observe(d.Seconds())
}

// Registry returns a registry holding the relay's metrics and the Go
// runtime's (built once).
func (m *metrics) Registry() *prometheus.Registry {
	m.registryOnce.Do(func() {
		m.registry = prometheus.NewRegistry()
		m.registry.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
	return m.registry
}

// rates turns the hub's byte counters into bitrates, sampled once a second
// by the relay's sampler goroutine. Guarded by mu; no I/O under it.
type rates struct {
	mu              sync.Mutex
	lastAt          time.Time
	lastIn, lastOut uint64
	in, out         int64 // bits per second
}

func (r *rates) sample(t stream.Totals, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastAt.IsZero() {
		if dt := now.Sub(r.lastAt).Seconds(); dt > 0 {
			r.in = int64(float64(t.BytesIn-r.lastIn) * 8 / dt)
			r.out = int64(float64(t.BytesOut-r.lastOut) * 8 / dt)
		}
	}
	r.lastAt, r.lastIn, r.lastOut = now, t.BytesIn, t.BytesOut
}

func (r *rates) get() (in, out int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.in, r.out
}
