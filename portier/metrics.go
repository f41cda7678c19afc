package portier

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the control plane's Prometheus registry, served at /metrics.
// Other parts of the control plane add their collectors with
// Registry.MustRegister.
type Metrics struct {
	Registry     *prometheus.Registry
	HTTPRequests *prometheus.CounterVec   // by route, method, status
	HTTPDuration *prometheus.HistogramVec // by route
}

// Metrics returns the Server's metrics registry.
func (s *Server) Metrics() *Metrics { return s.metrics }

func newMetrics(s *Server) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portier_http_requests_total", Help: "HTTP requests served by the control plane, by route and status.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portier_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"route"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration,
		&dbCollector{s: s},
	)
	m.Registry.MustRegister(s.HookCollectors()...)
	return m
}

func (m *Metrics) middleware(c *gin.Context) {
	start := time.Now()
	c.Next()
	// Labels come from fixed sets only: a client chooses the method and
	// the path, and each new label value is a series kept for good.
	route := c.FullPath() // the route template, never the raw path
	if route == "" {
		route = "unmatched"
	}
	m.HTTPRequests.WithLabelValues(route, methodLabel(c.Request.Method), statusLabel(c.Writer.Status())).Inc()
	m.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// methodLabel is the method for a metric label: a standard method, or
// "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusLabel is the status code for a metric label (handlers choose it,
// but a proxied or hijacked response could carry anything).
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

func (s *Server) serveMetrics(c *gin.Context) {
	promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(c.Writer, c.Request)
}

// dbCollector reads gauges from the database at scrape time, so every
// replica reports the same shared state: live streams, and nodes by role and
// state (alive, dead, draining).
type dbCollector struct{ s *Server }

var (
	descLive  = prometheus.NewDesc("portier_live_streams", "Streams live now.", nil, nil)
	descNodes = prometheus.NewDesc("portier_nodes", "Registered nodes by role and state.", []string{"role", "state"}, nil)
	descUp    = prometheus.NewDesc("portier_database_up", "1 when the database answered the last scrape.", nil, nil)
)

func (d *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLive
	ch <- descNodes
	ch <- descUp
	describeCDN(ch)
}

func (d *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st := d.s.p.Store
	live, err := st.CountLiveStreams(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(live))
	nodes, err := st.ListNodes(ctx, "")
	if err != nil {
		return
	}
	counts := map[[2]string]int{}
	now := time.Now()
	for i := range nodes {
		counts[[2]string{nodes[i].Role, d.s.lv.NodeState(&nodes[i], now)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	collectCDN(ch, nodes, d.s.nodeStateAt(now))
}
