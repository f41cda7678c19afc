package rtsp

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/tests/peers"
)

// A UDP player's statistics: packets and bytes sent, and per track the
// loss and jitter of its RTCP receiver reports (gortsplib's client sends
// one every 5 s).
func TestPlayerStats(t *testing.T) {
	s, hub := startServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/watched"), peers.PublishOpts{})
	waitLive(t, hub, "live/watched", pub)
	c, u := dialRTSP(t, rtspURL(s, "live/watched"), gortsplib.TransportUDP)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	var ps []PlayerStats
	testutil.Eventually(t, 12*time.Second, "receiver reports for both tracks", func() bool {
		ps = s.PlayerStats()
		if len(ps) != 1 || len(ps[0].Tracks) != 2 {
			return false
		}
		for _, tr := range ps[0].Tracks {
			if tr.ReportedAt.IsZero() {
				return false
			}
		}
		return true
	})
	p := ps[0]
	t.Logf("%+v", p)
	if p.Path != "live/watched" || p.Transport != "udp" || p.Packets == 0 || p.Bytes == 0 || p.RemoteAddr == "" {
		t.Fatalf("player %+v", p)
	}
	for _, tr := range p.Tracks {
		if tr.PacketsSent == 0 || tr.Lost != 0 || tr.FractionLost != 0 || tr.JitterSeconds < 0 || tr.JitterSeconds > 0.1 {
			t.Fatalf("track %+v", tr)
		}
	}
	c.Close()
	testutil.Eventually(t, 5*time.Second, "player gone", func() bool { return len(s.PlayerStats()) == 0 })
}
