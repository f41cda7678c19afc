package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/rtsppull"
	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// An origin pulls a camera's RTSP stream itself (`portier relay --role
// origin --rtsp-pull`, no ffmpeg on our side): MediaMTX plays the camera,
// fed by ffmpeg. The control plane authorises the pull's publish with the
// stream's key like an encoder's (audited, with the pull's protocol), and
// an edge serves it to an RTSP/UDP player and to ffprobe over RTMP. When
// the camera's encoder restarts, the origin pulls again.
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
		"--rtsp-pull", "live/foo?key="+cp.Stream.PublishKey+"="+cam.RTSPURL("cam1"), "--rtsp-pull-transport", "udp")
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
	if n := pullAudits(t, cp, "publish.authorize"); n != 1 {
		t.Errorf("%d publish.authorize audit events from the pull, want 1", n)
	}

	// The camera's encoder restarts: the pull's session ends (its publish
	// is reported done), the origin pulls again with a new authorisation.
	enc.Stop()
	testutil.Eventually(t, 30*time.Second, "the pull noticed the camera stopped", func() bool {
		p := relayPulls(t, origin.httpAddr)
		return len(p) == 1 && p[0].Failures >= 1
	})
	enc = peers.Publish(t, ctx, cam.RTSPURL("cam1"), peers.PublishOpts{})
	testutil.Eventually(t, 30*time.Second, "the origin pulls the camera again", func() bool {
		p := relayPulls(t, origin.httpAddr)
		return len(p) == 1 && p[0].Playing && p[0].Sessions == 2
	})
	if _, err := peers.ProbeUntil(t, ctx, url); err != nil {
		t.Fatalf("ffprobe RTSP from the edge after the camera came back: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "second authorisation and the first publish's end audited", func() bool {
		evs, _, err := cp.Store.ListAudit(ctx, models.AuditFilter{Action: "publish.done", Object: models.StreamObject(cp.Stream.ID), Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		done := slices.ContainsFunc(evs, func(e models.AuditEvent) bool { return strings.Contains(string(e.Details), `"publish_id":1`) })
		return pullAudits(t, cp, "publish.authorize") == 2 && done
	})
}

// pullAudits counts audit events of action whose details name the RTSP
// pull's protocol.
func pullAudits(t *testing.T, cp *controlPlane, action string) int {
	t.Helper()
	evs, _, err := cp.Store.ListAudit(context.Background(), models.AuditFilter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if strings.Contains(string(e.Details), `"protocol":"`+rtsppull.Protocol+`"`) {
			n++
		}
	}
	return n
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
