package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/media/rtp"
)

// The RTP flow metrics live here, where the relay wires its metrics, so
// that media/rtp stays pure protocol code with no Prometheus dependency.

// rtpCollector exposes RTP flows (media/rtp.Flow) as Prometheus metrics, read at scrape time from
// the flows function (which must be safe to call concurrently). Labels are
// path, track, codec, direction, transport and ssrc.
type rtpCollector struct {
	flows func() []rtp.Flow
	descs rtpDescs
}

type rtpDescs struct {
	packets, bytes, lost, expected, dups, reordered, resets, ignored, late, jitter *prometheus.Desc
}

var _ prometheus.Collector = (*rtpCollector)(nil)

// newRTPCollector returns a collector of the flows' counters named
// namespace_rtp_* (e.g. portier_rtp_packets_total).
func newRTPCollector(namespace string, flows func() []rtp.Flow) *rtpCollector {
	labels := []string{"path", "track", "codec", "direction", "transport", "ssrc"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "rtp", name), help, labels, nil)
	}
	return &rtpCollector{flows: flows, descs: rtpDescs{
		packets:   d("packets_total", "RTP packets received."),
		bytes:     d("bytes_total", "RTP bytes received (header and payload)."),
		lost:      d("lost_packets", "RTP packets lost (sequence numbers never received)."),
		expected:  d("expected_packets", "RTP packets the sequence numbers say were sent."),
		dups:      d("duplicated_packets_total", "RTP packets received more than once."),
		reordered: d("reordered_packets_total", "RTP packets received after a higher sequence number."),
		resets:    d("sequence_resets_total", "RTP sender restarts (confirmed sequence number jumps)."),
		ignored:   d("ignored_packets_total", "RTP packets outside the flow's sequence (strays, other SSRCs)."),
		late:      d("late_discarded_packets_total", "RTP packets received too late for the reorder buffer (not lost)."),
		jitter:    d("jitter_seconds", "RTP interarrival jitter (RFC 3550 6.4.1)."),
	}}
}

// Describe implements prometheus.Collector.
func (c *rtpCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, x := range []*prometheus.Desc{d.packets, d.bytes, d.lost, d.expected, d.dups, d.reordered, d.resets, d.ignored, d.late, d.jitter} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (c *rtpCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs
	for _, f := range c.flows() {
		lv := []string{f.Path, f.Track, f.Codec, f.Direction, f.Transport, formatSSRC(f.SSRC)}
		m := func(desc *prometheus.Desc, t prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, t, v, lv...)
		}
		m(d.packets, prometheus.CounterValue, float64(f.Packets))
		m(d.bytes, prometheus.CounterValue, float64(f.Bytes))
		m(d.lost, prometheus.GaugeValue, float64(f.Lost))
		m(d.expected, prometheus.GaugeValue, float64(f.Expected))
		m(d.dups, prometheus.CounterValue, float64(f.Duplicated))
		m(d.reordered, prometheus.CounterValue, float64(f.Reordered))
		m(d.resets, prometheus.CounterValue, float64(f.Resets))
		m(d.ignored, prometheus.CounterValue, float64(f.Ignored))
		m(d.late, prometheus.CounterValue, float64(f.LateDiscarded))
		m(d.jitter, prometheus.GaugeValue, f.JitterSeconds)
	}
}

func formatSSRC(v uint32) string { return fmt.Sprintf("%08x", v) }
