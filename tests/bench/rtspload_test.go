package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// The RTSP load client against our relay: every player connects over UDP,
// keeps up with the publisher and counts what it got.
func TestRTSPLoadClientPortier(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	target := rtspFanoutServers()[0].Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := peers.Publish(t, ctx, target.PublishURL, peers.PublishOpts{VideoBitrate: 500_000})
	if err := pub.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if _, err := peers.ProbeUntil(t, ctx, target.PlayURL); err != nil {
		t.Fatal(err)
	}
	const players = 3
	res, err := RunRTSPLoad(ctx, RTSPLoadOpts{URL: target.PlayURL, Players: players, Duration: 8 * time.Second,
		ExpectedBitrate: pub.OutputBitrate, KeepUpRatio: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Connected != players || res.Dropped != 0 || res.KeptUp != players {
		t.Errorf("connected %d, dropped %d, kept up %d of %d players (errors %v)", res.Connected, res.Dropped, res.KeptUp, players, res.Errors)
	}
	if res.WindowPackets == 0 || res.Bytes < res.Packets*12 {
		t.Errorf("counted %d packets in the window, %d bytes in %d packets over the run", res.WindowPackets, res.Bytes, res.Packets)
	}
	if res.MedianBitrate < 0.8*res.ExpectedBitrate {
		t.Errorf("median player %.0f bit/s, publisher %.0f bit/s", res.MedianBitrate, res.ExpectedBitrate)
	}
}

// A URL that is not RTSP, or no server, is an error or a failed connect,
// never a hang.
func TestRTSPLoadClientRefused(t *testing.T) {
	_, err := RunRTSPLoad(context.Background(), RTSPLoadOpts{URL: "rtmp://127.0.0.1:1/x", Players: 1, Duration: 5 * time.Second,
		ExpectedBitrate: func(time.Time, time.Time) (float64, error) { return 1, nil }})
	if err == nil {
		t.Fatal("an rtmp:// URL was accepted")
	}
	addr := peers.FreeAddr(t)
	_, err = RunRTSPLoad(context.Background(), RTSPLoadOpts{URL: "rtsp://" + addr + "/live/x", Players: 2, Duration: 5 * time.Second,
		ConnectTimeout: time.Second, ExpectedBitrate: func(time.Time, time.Time) (float64, error) { return 1, nil }})
	if err == nil || !strings.Contains(err.Error(), "no player connected") {
		t.Fatalf("players of a closed port: %v, want no player connected", err)
	}
}
