package concierge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/media/httpserve"
)

// metrics are the concierge's Prometheus metrics (its own registry).
type metrics struct {
	reg        *prometheus.Registry
	failures   prometheus.Counter
	reports    *prometheus.CounterVec
	fenced     prometheus.Counter
	registered atomic.Bool
}

func newMetrics(c *Concierge) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "portier_concierge_task_failures_total",
		Help: "Task process exits that were not asked for (each starts a backoff)."})
	m.reports = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portier_concierge_task_reports_total",
		Help: "Task state changes reported to the control plane, by state."}, []string{"state"})
	m.fenced = prometheus.NewCounter(prometheus.CounterOpts{Name: "portier_concierge_tasks_fenced_total",
		Help: "Tasks stopped because the control plane refused their epoch (reassigned elsewhere)."})
	m.reg.MustRegister(m.failures, m.reports, m.fenced,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portier_concierge_tasks_running", Help: "Task processes running now."},
			func() float64 { return float64(c.nRunning.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portier_concierge_cost_used", Help: "CPU cores the tasks this concierge should run are budgeted (their placement cost)."},
			func() float64 { return taskcost.Cores(int(c.costUsed.Load())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portier_concierge_capacity", Help: "CPU cores this concierge offers tasks (--capacity)."},
			func() float64 { return float64(c.p.Capacity) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portier_concierge_supervisord_restarts", Help: "Times the embedded supervisord died and was restarted."},
			func() float64 {
				if c.emb == nil {
					return 0
				}
				return float64(c.emb.Restarts())
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portier_concierge_heartbeat_age_seconds", Help: "Time since the control plane last confirmed a heartbeat."},
			func() float64 {
				if last := c.lastHBOK.Load(); last > 0 {
					return time.Since(time.Unix(0, last)).Seconds()
				}
				return 0
			}),
	)
	return m
}

// serveHTTP serves /healthz, /readyz and /metrics on l until ctx ends.
func (c *Concierge) serveHTTP(ctx context.Context, l net.Listener) net.Addr {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		switch {
		case !c.m.registered.Load():
			http.Error(w, "not registered with the control plane yet", http.StatusServiceUnavailable)
		case c.cutOff():
			http.Error(w, "control plane unreachable: tasks stopped", http.StatusServiceUnavailable)
		default:
			if _, err := c.drv.Client().GetState(rctx); err != nil {
				http.Error(w, "supervisord not answering", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("ready\n"))
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(c.m.reg, promhttp.HandlerOpts{}))
	srv := httpserve.NewServer(mux, c.p.HTTPTimeouts)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("http server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return l.Addr()
}
