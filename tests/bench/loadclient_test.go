package bench

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

func TestAMFRoundTrip(t *testing.T) {
	in := []any{"connect", 1.0, map[string]any{"app": "live", "fpad": false, "n": 15.0}, nil, "x", -2000.0}
	out, err := amfDecodeAll(amfEncode(in...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %#v, want %#v", out, in)
	}
	for _, bad := range [][]byte{{0x00, 1, 2}, {0x02, 0, 9, 'a'}, {0x03, 0, 1, 'k'}, {0x11}, {0x0A, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := amfDecodeAll(bad); err == nil {
			t.Errorf("decode %x: no error", bad)
		}
	}
}

func TestPlayTarget(t *testing.T) {
	addr, app, tc, name, err := playTarget("rtmp://127.0.0.1:1940/live/cam?key=k")
	if err != nil || addr != "127.0.0.1:1940" || app != "live" || tc != "rtmp://127.0.0.1:1940/live" || name != "cam?key=k" {
		t.Errorf("got %q %q %q %q %v", addr, app, tc, name, err)
	}
	for _, bad := range []string{"http://x/live/a", "rtmp://x/live", "rtmp://x/", "::"} {
		if _, _, _, _, err := playTarget(bad); err == nil {
			t.Errorf("playTarget(%q): no error", bad)
		}
	}
}

// TestLoadClientNginx plays a real nginx-rtmp stream with a few players. The
// server's small acknowledgement window and 1 s pings make nginx drop any
// player that does not acknowledge or answer pings.
func TestLoadClientNginx(t *testing.T) {
	n := peers.NginxRTMP(t, peers.NginxOpts{
		ServerDirectives: []string{"ack_window 100000;", "ping 1s;", "ping_timeout 1s;"},
	})
	url := n.RTMPURL("live", "load")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, url, peers.PublishOpts{VideoBitrate: 500_000})
	if err := pub.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	sampler, err := StartProcSampler(n.Proc.PID(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunLoad(ctx, LoadOpts{URL: url, Players: 4, Duration: 8 * time.Second, ExpectedBitrate: pub.OutputBitrate})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sampler.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: connected %d kept-up %d dropped %d expected %.0f bit/s median %.0f worst lag %s errors %v; server cpu %.2fs rss %d→%d KB",
		res.Connected, res.KeptUp, res.Dropped, res.ExpectedBitrate, res.MedianBitrate, res.WorstLag, res.Errors,
		st.CPUSeconds, st.BaselineRSSKB, st.PeakRSSKB)
	if res.Connected != 4 || res.Dropped != 0 || res.KeptUp != 4 {
		t.Errorf("connected %d, dropped %d, kept up %d; want 4, 0, 4 (errors %v)", res.Connected, res.Dropped, res.KeptUp, res.Errors)
	}
	if res.ExpectedBitrate < 400_000 || res.ExpectedBitrate > 800_000 {
		t.Errorf("publisher rate %.0f bit/s, want about 560 kbit/s", res.ExpectedBitrate)
	}
	if math.Abs(res.MedianBitrate-res.ExpectedBitrate) > 0.05*res.ExpectedBitrate {
		t.Errorf("median player rate %.0f vs publisher %.0f: more than 5%% apart", res.MedianBitrate, res.ExpectedBitrate)
	}
	if res.WorstLag > time.Second {
		t.Errorf("worst lag %s on an idle loopback", res.WorstLag)
	}
	for i, p := range res.PerPlayer {
		if p.AcksSent == 0 || p.VideoMessages < 100 || p.AudioMessages < 100 {
			t.Errorf("player %d: %d acks, %d video, %d audio messages", i, p.AcksSent, p.VideoMessages, p.AudioMessages)
		}
	}
	if st.CPUSeconds <= 0 || st.PeakRSSKB <= 0 {
		t.Errorf("sampler measured nothing: %+v", st)
	}
}

// TestLoadClientRefused checks that playing a stream nobody publishes, on a
// server that refuses it, counts as not connected rather than hanging.
func TestLoadClientRefused(t *testing.T) {
	m := peers.StartMediaMTX(t, peers.MediaMTXOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := RunLoad(ctx, LoadOpts{URL: m.RTMPURL("live/none"), Players: 2, Duration: 5 * time.Second,
		ExpectedBitrate: func(time.Time, time.Time) (float64, error) { return 1, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 0 || len(res.Errors) == 0 {
		t.Errorf("connected %d, errors %v: want 0 connected and an error", res.Connected, res.Errors)
	}
	t.Logf("errors: %v", res.Errors)
}

// TestLoadClientMediaMTX plays a MediaMTX stream with a few players on both
// known versions, with B-frames in the H.264 (see peers.MediaMTX1153).
func TestLoadClientMediaMTX(t *testing.T) {
	for _, v := range []peers.MediaMTXVersion{peers.MediaMTX1153, peers.MediaMTX1140} {
		t.Run(string(v), func(t *testing.T) {
			m := peers.StartMediaMTX(t, peers.MediaMTXOpts{Version: v})
			url := m.RTMPURL("live/load")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			pub := peers.Publish(t, ctx, url, peers.PublishOpts{VideoBitrate: 500_000, BFrames: true})
			if _, err := peers.ProbeUntil(t, ctx, url); err != nil {
				t.Fatal(err)
			}
			res, err := RunLoad(ctx, LoadOpts{URL: url, Players: 3, Duration: 8 * time.Second, ExpectedBitrate: pub.OutputBitrate})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("connected %d kept-up %d dropped %d expected %.0f median %.0f worst lag %s errors %v",
				res.Connected, res.KeptUp, res.Dropped, res.ExpectedBitrate, res.MedianBitrate, res.WorstLag, res.Errors)
			if res.Connected != 3 || res.Dropped != 0 || res.KeptUp != 3 {
				t.Errorf("connected %d, dropped %d, kept up %d; want 3, 0, 3", res.Connected, res.Dropped, res.KeptUp)
			}
		})
	}
}
