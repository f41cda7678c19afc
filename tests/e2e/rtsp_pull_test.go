package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/rtsppull"
	"github.com/portier/portier/tests/peers"
)

// An origin pulls a camera's RTSP stream itself (`portier relay --role
// origin --rtsp-pull`, no ffmpeg on our side): MediaMTX plays the camera,
// fed by ffmpeg. The stream goes live in the control plane from the
// origin's heartbeat, and an edge serves it to an RTSP/UDP player and to
// ffprobe over RTMP.
func TestRTSPPullThroughEdge(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	cp := startControlPlane(t)
	cam := peers.StartMediaMTX(t, peers.MediaMTXOpts{LogLevel: "warn"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	enc := peers.Publish(t, ctx, cam.RTSPURL("cam1"), peers.PublishOpts{})
	if err := enc.WaitFrames(ctx, 25); err != nil {
		t.Fatalf("camera encoder: %v", err)
	}
	origin := startRelayProc(t, "origin-1", "origin", cp.URL,
		"--rtsp-pull", "live/foo="+cam.RTSPURL("cam1"), "--rtsp-pull-transport", "udp")
	rtspAddr := peers.FreeAddr(t)
	edge := startRelayProc(t, "edge-1", "edge", cp.URL, "--rtsp-addr", rtspAddr, "--rtsp-udp-addr", "127.0.0.1:0")

	c, _ := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	testutil.Eventually(t, 20*time.Second, "the control plane lists the pulling origin for live/foo", func() bool {
		o, err := c.Directory(ctx, "live", "foo")
		return err == nil && len(o) == 1 && o[0].Name == "origin-1"
	})
	st, _ := findStream(relayStreams(t, origin.httpAddr), "live/foo")
	if !st.Live || st.Protocol != rtsppull.Protocol || st.Resolution != "640x360" || st.Codec.AudioCodec != "aac" {
		t.Errorf("origin stream %+v, want live from %s, 640x360 with AAC", st, rtsppull.Protocol)
	}
	pulls := relayPulls(t, origin.httpAddr)
	if len(pulls) != 1 || !pulls[0].Playing || pulls[0].Sessions != 1 || pulls[0].Path != "live/foo" {
		t.Errorf("origin pulls %+v, want live/foo playing in its first session", pulls)
	}

	url := "rtsp://" + rtspAddr + "/live/foo"
	player := peers.Play(t, ctx, url, peers.PlayOpts{RTSPTransport: "udp"})
	if err := player.WaitFrames(ctx, 50); err != nil {
		t.Fatalf("RTSP/UDP player on the edge: %v", err)
	}
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+edge.rtmpAddr+"/live/foo")
	if err != nil {
		t.Fatalf("ffprobe RTMP from the edge: %v", err)
	}
	if v, _ := res.Video(); !res.HasCodec("h264") || !res.HasCodec("aac") || v.Width != 640 || v.Height != 360 {
		t.Errorf("edge RTMP: %v %dx%d, want h264 640x360 + aac", res.Codecs(), v.Width, v.Height)
	}
}

// relayPulls fetches a relay's /api/v1/rtsp-pulls.
func relayPulls(t *testing.T, httpAddr string) []rtsppull.Status {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/v1/rtsp-pulls", nil)
	req.Header.Set("Authorization", "Bearer "+relayClusterToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("relay API: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Pulls []rtsppull.Status `json:"pulls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("relay API: %v", err)
	}
	return body.Pulls
}
