package sched

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/models"
)

// schedMetrics are the scheduler's Prometheus metrics: counters of what this
// replica did, and task counts read from the database at scrape time (the
// same on every replica).
type schedMetrics struct {
	assigned   prometheus.Counter
	expired    prometheus.Counter
	staleEpoch prometheus.Counter
}

var descTasks = prometheus.NewDesc("portier_tasks", "Tasks by state and desired state.", []string{"state", "desired"}, nil)

type taskCollector struct{ st *models.Store }

func (c taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTasks }

func (c taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	counts, err := c.st.TaskStateCounts(ctx)
	if err != nil {
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n.N), n.State, n.DesiredState)
	}
}

func newSchedMetrics() schedMetrics {
	return schedMetrics{
		assigned: prometheus.NewCounter(prometheus.CounterOpts{Name: "portier_scheduler_assignments_total",
			Help: "Task assignments made by this replica's scheduler."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "portier_scheduler_lease_expiries_total",
			Help: "Tasks taken from a concierge whose lease expired, by this replica."}),
		staleEpoch: prometheus.NewCounter(prometheus.CounterOpts{Name: "portier_scheduler_stale_reports_total",
			Help: "Concierge reports refused with 409 stale_epoch (the concierge stops the task)."}),
	}
}
