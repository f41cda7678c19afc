package portier

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHookMetrics(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		e.publish(t, "origin-1")
		e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-1", "app": "live", "name": "show", "query": "key=bad"})
		e.call(t, "POST", "/internal/v1/play/authorize", map[string]any{"node": "edge-1", "app": "live", "name": "show"})
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.srv.HookCollectors()...)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]float64{}
		var observed uint64
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				labels := ""
				for _, l := range m.GetLabel() {
					labels += l.GetName() + "=" + l.GetValue() + ","
				}
				switch mf.GetName() {
				case "portier_hook_decisions_total":
					counts[labels] = m.GetCounter().GetValue()
				case "portier_hook_decision_seconds":
					observed += m.GetHistogram().GetSampleCount()
				}
			}
		}
		want := map[string]float64{
			"action=publish,dialect=native,result=allowed,": 1,
			"action=publish,dialect=native,result=denied,":  1,
			"action=play,dialect=native,result=allowed,":    1,
		}
		for k, v := range want {
			if counts[k] != v {
				t.Errorf("%s = %v, want %v (all: %v)", k, counts[k], v, counts)
			}
		}
		if observed != 3 {
			t.Errorf("latency observations %d, want 3", observed)
		}
	})
}
