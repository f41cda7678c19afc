package relay

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/tests/peers"
)

// originWithFFmpeg starts an origin with the cluster token tok and a real
// ffmpeg publishing live/NAME to it (lavfi testsrc2 + sine, libx264 + aac).
func originWithFFmpeg(t *testing.T, ctx context.Context, tok, name string) *Relay {
	t.Helper()
	hs := httptest.NewServer(&allowAll{})
	t.Cleanup(hs.Close)
	r := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL, ClusterToken: tok})
	pub := peers.Publish(t, ctx, "rtmp://"+r.RTMPAddr().String()+"/live/"+name+"?key=good", peers.PublishOpts{})
	if err := pub.WaitFrames(ctx, 10); err != nil {
		t.Fatalf("publish: %v\n%s", err, pub.Stderr())
	}
	return r
}

// startPlayer runs a real ffmpeg player of url (-c copy to null) until the
// test ends.
func startPlayer(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	bin := peers.RequireTool(t, "ffmpeg")
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-loglevel", "error", "-rw_timeout", "15000000",
		"-i", url, "-c", "copy", "-f", "null", "-")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = peers.StopGrace
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
}

// A player that marks itself internal without the cluster's proof counts as
// a viewer; the control plane's task URL (with the proof) does not.
func TestInternalPlayNeedsProof(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const tok = "cluster-secret"
	r := originWithFFmpeg(t, ctx, tok, "cam")
	base := "rtmp://" + r.RTMPAddr().String() + "/live/cam"
	startPlayer(t, ctx, base+"?"+nodewire.InternalPlayQuery+"=record")                                 // forged: no proof
	startPlayer(t, ctx, base+"?"+nodewire.InternalPlayURLQuery("guessed-token", "live/cam", "record")) // forged: wrong key
	startPlayer(t, ctx, base+"?"+nodewire.InternalPlayURLQuery(tok, "live/other", "record"))           // proof for another stream
	startPlayer(t, ctx, base+"?"+nodewire.InternalPlayURLQuery(tok, "live/cam", "record"))             // the control plane's
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := findStatus(r.Streams(), "live/cam")
		if st.Players == 4 {
			if st.InternalPlayers != 1 {
				t.Fatalf("4 players, %d internal: want 1 (only the one with the proof)", st.InternalPlayers)
			}
			hb := r.report()
			for _, s := range hb.Streams {
				if s.Path == "live/cam" && s.Players != 3 {
					t.Fatalf("heartbeat reports %d viewers, want 3", s.Players)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("players never reached 4: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ffprobe lists exactly the published video and audio (h264, aac) on RTMP
// and HTTP-FLV play, at an origin and through an edge: no data or subtitle
// stream.
func TestFFprobeSeesOnlyVideoAndAudio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := originWithFFmpeg(t, ctx, "tok", "probe")
	// An edge pulling from the origin serves the same.
	e := start(t, Params{Role: RoleEdge, Name: "edge-1", StaticOrigins: []string{r.RTMPAddr().String()}})
	for _, url := range []string{
		"rtmp://" + r.RTMPAddr().String() + "/live/probe",
		"http://" + r.HTTPAddr().String() + "/live/probe.flv",
		"rtmp://" + e.RTMPAddr().String() + "/live/probe",
		"http://" + e.HTTPAddr().String() + "/live/probe.flv",
	} {
		res, err := peers.Probe(t, ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range res.Streams {
			got = append(got, s.CodecType+" "+s.CodecName)
		}
		if want := []string{"video h264", "audio aac"}; !slices.Equal(got, want) {
			t.Errorf("%s: ffprobe lists [%s], want [%s]", url, strings.Join(got, ", "), strings.Join(want, ", "))
		}
	}
}
