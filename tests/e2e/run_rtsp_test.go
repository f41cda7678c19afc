package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/tests/peers"
)

// `portier run` serves RTSP over UDP by default: ffmpeg publishes with
// -rtsp_transport udp (which has no TCP fallback) and the stream goes live.
func TestRunRTSPOverUDP(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t)
	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "udpcam"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := peers.Publish(t, ctx, "rtsp://"+a.rtsp+"/live/udpcam?key="+st.Key, peers.PublishOpts{RTSPTransport: "udp"})
	testutil.Eventually(t, 20*time.Second, "stream live after an RTSP/UDP publish", func() bool {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		return a.live(t, st.ID)
	})
	pub.Stop()
	testutil.Eventually(t, 15*time.Second, "stream offline after the publisher stopped", func() bool { return !a.live(t, st.ID) })
}
