package portier

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portier/portier/media/cdnedge"
	"github.com/portier/portier/models/modelstest"
)

// The control plane exports each live CDN edge's load from its heartbeats
// and the desired edge count the cdn-edge autoscaler follows: total
// egress over 70 % of the mean registered capacity, rounded up. A dead or
// draining edge is left out.
func TestCDNMetrics(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		// Two edges of 1,000 Mbit/s at 900 and 500 Mbit/s: 1,400 / 700 = 2.
		for i, out := range []int64{900e6, 500e6} {
			name := fmt.Sprintf("edge-%d", i)
			if code, body := e.call(t, "POST", "/internal/v1/nodes/register", map[string]any{
				"name": name, "role": "cdn-edge", "http_address": fmt.Sprintf("127.0.0.1:%d", 9000+i), "capacity": 1000}); code != 200 {
				t.Fatalf("register %s: %d %v", name, code, body)
			}
			if code, body := e.call(t, "POST", "/internal/v1/nodes/"+name+"/heartbeat", map[string]any{
				"load": map[string]any{"bitrate_out": out, "active_requests": 7, "hit_ratio": 0.9, "cache_bytes": 1 << 20}}); code != 200 {
				t.Fatalf("heartbeat %s: %d %v", name, code, body)
			}
		}
		got := gatherGauges(t, e.srv)
		for k, want := range map[string]float64{
			"portier_cdn_desired_edges":                              2,
			"portier_cdn_egress_bits_per_second":                     1400e6,
			"portier_cdn_node_egress_bits_per_second{edge=edge-0}":   900e6,
			"portier_cdn_node_active_requests{edge=edge-1}":          7,
			"portier_cdn_node_hit_ratio{edge=edge-0}":                0.9,
			"portier_cdn_node_cache_bytes{edge=edge-1}":              1 << 20,
			"portier_cdn_node_capacity_bits_per_second{edge=edge-1}": 1000e6,
		} {
			if got[k] != want {
				t.Errorf("%s = %v, want %v", k, got[k], want)
			}
		}
		// A third edge brings the egress just over three edges' 70 %.
		e.call(t, "POST", "/internal/v1/nodes/register", map[string]any{"name": "edge-2", "role": "cdn-edge", "http_address": "127.0.0.1:9002", "capacity": 1000})
		e.call(t, "POST", "/internal/v1/nodes/edge-2/heartbeat", map[string]any{"load": map[string]any{"bitrate_out": 700e6 + 1}})
		if got := gatherGauges(t, e.srv)["portier_cdn_desired_edges"]; got != 4 {
			t.Errorf("desired edges at 2,100 Mbit/s + 1 bit/s on 3 edges of 1,000 = %v, want 4", got)
		}
	})
}

// gatherGauges scrapes the server's registry into name{label=value,…} → value
// for its gauges.
func gatherGauges(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	mfs, err := s.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() == nil {
				continue
			}
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			k := mf.GetName()
			if len(ls) > 0 {
				k += "{" + strings.Join(ls, ",") + "}"
			}
			out[k] = m.GetGauge().GetValue()
		}
	}
	return out
}

// `portier run` serves the control plane's and its embedded CDN edge's
// metrics from one registry: no name may be taken twice (the control
// plane's per-edge gauges once used the edge's own names, and run
// panicked at start).
func TestCDNMetricsBesideAnEmbeddedEdge(t *testing.T) {
	e := newLiveEnv(t, modelstest.SQLite(t))
	edge, err := cdnedge.New(cdnedge.Params{Origins: []string{"http://127.0.0.1:9"}, ClusterToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close()
	for _, c := range edge.Collectors() {
		if err := e.srv.Metrics().Registry.Register(c); err != nil {
			t.Errorf("the embedded edge's metrics beside the control plane's: %v", err)
		}
	}
}
