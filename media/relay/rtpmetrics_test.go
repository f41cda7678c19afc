package relay

import (
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portier/portier/media/rtp"
)

func TestRTPCollector(t *testing.T) {
	s := rtp.NewStats(90000)
	for _, seq := range []uint16{1, 2, 4} {
		s.Update(&pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 0x1234}, Payload: make([]byte, 100)}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	c := newRTPCollector("portier", func() []rtp.Flow {
		return []rtp.Flow{{Path: "live/a", Track: "0", Codec: "H264", Direction: "in", Transport: "udp", Snapshot: s.Snapshot()}}
	})
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 10 {
		t.Fatalf("%d metric families, want 10", len(mfs))
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["path"] != "live/a" || labels["ssrc"] != "00001234" || labels["transport"] != "udp" || labels["codec"] != "H264" {
			t.Fatalf("%s labels %v", mf.GetName(), labels)
		}
		if m.GetCounter() != nil {
			values[mf.GetName()] = m.GetCounter().GetValue()
		} else {
			values[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if values["portier_rtp_packets_total"] != 3 || values["portier_rtp_lost_packets"] != 1 || values["portier_rtp_expected_packets"] != 4 || values["portier_rtp_bytes_total"] != 336 || values["portier_rtp_late_discarded_packets_total"] != 0 {
		t.Fatalf("values %v", values)
	}
}
