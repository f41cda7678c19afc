package relay

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// startRTSPPlayer runs a real ffmpeg RTSP player of url over transport
// (-c copy to null) until stop is called or the test ends.
func startRTSPPlayer(t *testing.T, ctx context.Context, url, transport string) (stop func()) {
	t.Helper()
	bin := peers.RequireTool(t, "ffmpeg")
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_transport", transport,
		"-timeout", "15000000", "-i", url, "-c", "copy", "-f", "null", "-")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = peers.StopGrace
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	return stop
}

// Three RTSP players (two over TCP, one over UDP) and one RTMP player of
// one stream are four players in the API, the metrics and the heartbeat's
// viewer count, and the bytes sent to the three RTSP players all count.
func TestRTSPPlayersCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	hs := httptest.NewServer(&allowAll{})
	t.Cleanup(hs.Close)
	r := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL,
		RTSPAddr: "127.0.0.1:0", RTSPUDPAddr: "127.0.0.1:0"})
	pub := peers.Publish(t, ctx, "rtmp://"+r.RTMPAddr().String()+"/live/many?key=good", peers.PublishOpts{})
	if err := pub.WaitFrames(ctx, 10); err != nil {
		t.Fatalf("publish: %v\n%s", err, pub.Stderr())
	}
	rtspURL := "rtsp://" + r.RTSPAddr().String() + "/live/many"
	var stops []func()
	for _, tr := range []string{"tcp", "tcp", "udp"} {
		stops = append(stops, startRTSPPlayer(t, ctx, rtspURL, tr))
	}
	startPlayer(t, ctx, "rtmp://"+r.RTMPAddr().String()+"/live/many")

	players := func() (StreamStatus, int, int) {
		st, _ := findStatus(r.Streams(), "live/many")
		viewers := -1
		for _, s := range r.report().Streams {
			if s.Path == "live/many" {
				viewers = s.Players
			}
		}
		return st, viewers, r.totals().Readers
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		st, viewers, metric := players()
		per, _ := r.servers.rtspPlays()
		pc := per["live/many"]
		if st.Players == 4 && pc.Players == 3 {
			if viewers != 4 || metric != 4 {
				t.Fatalf("API %d players, heartbeat %d viewers, metrics %d players: want 4 everywhere", st.Players, viewers, metric)
			}
			// Over 3 s of media each RTSP player gets what the fan-out
			// reads from the hub: three times as many bytes are sent.
			time.Sleep(3 * time.Second)
			per2, _ := r.servers.rtspPlays()
			pc2 := per2["live/many"]
			hub, sent := pc2.HubBytes-pc.HubBytes, pc2.BytesOut-pc.BytesOut
			st2, _ := findStatus(r.Streams(), "live/many")
			t.Logf("in 3 s: the fan-out read %d bytes from the hub, 3 RTSP players were sent %d; API bytes_out %d -> %d",
				hub, sent, st.BytesOut, st2.BytesOut)
			if sent < 5*hub/2 || hub == 0 {
				t.Fatalf("3 RTSP players were sent %d bytes for %d read from the hub: want about 3 times", sent, hub)
			}
			if st2.BytesOut-st.BytesOut < sent {
				t.Fatalf("API bytes_out grew by %d, less than what the RTSP players were sent (%d)", st2.BytesOut-st.BytesOut, sent)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("players never reached 4 (3 over RTSP): %+v, rtsp %+v", st, pc)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Players that leave stop counting; bytes already sent stay counted.
	before := r.totals().BytesOut
	for _, stop := range stops {
		stop()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, viewers, metric := players()
		if st.Players == 1 && viewers == 1 && metric == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the RTSP players left: API %d, heartbeat %d, metrics %d players, want 1", st.Players, viewers, metric)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after := r.totals().BytesOut; after < before {
		t.Fatalf("bytes_out went back from %d to %d when players left", before, after)
	}
}
