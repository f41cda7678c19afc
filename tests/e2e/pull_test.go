package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/tests/peers"
)

// TestRunPull is the pull task end to end in `portier run`: ffmpeg
// publishes over RTSP into MediaMTX (a camera or another server); a pull
// config on a stream made through the API ingests it into the relay; the
// stream turns live and ffprobe plays it from the relay over RTMP. A pull
// whose source refuses connections shows as a failing task with a readable
// reason and backs off exponentially instead of retrying in a loop.
func TestRunPull(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	mtx := peers.StartMediaMTX(t, peers.MediaMTXOpts{LogLevel: "warn"})
	a := startAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cam := peers.Publish(t, ctx, mtx.RTSPURL("cam"), peers.PublishOpts{Format: "rtsp", RTSPTransport: "tcp"})
	if _, err := peers.ProbeUntil(t, ctx, mtx.RTSPURL("cam")); err != nil {
		t.Fatalf("the RTSP source on MediaMTX does not play: %v", err)
	}

	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "pulled"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	t0 := time.Now()
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "pull", "name": "camera", "source": mtx.RTSPURL("cam"), "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create pull config: HTTP %d %v", code, cfg)
	}
	testutil.Eventually(t, 30*time.Second, "pulled stream live", func() bool { return a.live(t, st.ID) })
	t.Logf("pull config to stream live: %v", time.Since(t0).Round(time.Millisecond))
	// The relay pulls the RTSP source itself (no ffmpeg): the task runs
	// on the origin once its next heartbeat reports the pull playing.
	var ts []apiTask
	testutil.Eventually(t, 5*time.Second, "one running pull task on the origin", func() bool {
		ts = a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].Type == "pull" && ts[0].State == "running" && ts[0].Node == "e2e-origin"
	})
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+a.rtmp+"/live/pulled")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("ffprobe of the pulled stream from the relay: codecs %v, err %v", res.Codecs(), err)
	}
	if v, ok := res.Video(); !ok || v.Width != 640 || v.Height != 360 {
		t.Fatalf("pulled video %+v, want 640x360", v)
	}
	t.Logf("ffprobe plays the pulled stream (h264+aac 640x360) from the relay %v after the config was made", time.Since(t0).Round(time.Millisecond))

	// Disabling the config stops the pull, and the stream goes offline.
	var patched map[string]any
	if code := a.api(t, "PATCH", fmt.Sprintf("/api/v1/streams/%d/task-configs/%v", st.ID, cfg["id"]), map[string]any{"enabled": false}, &patched); code != 200 {
		t.Fatalf("disable pull config: HTTP %d %v", code, patched)
	}
	testutil.Eventually(t, 20*time.Second, "pulled stream offline after disabling the config", func() bool { return !a.live(t, st.ID) })
	cam.Stop()

	// A source that refuses connections: a failing task with a reason,
	// restarted with growing delays (1 s, 2 s, 4 s, …).
	var dead apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "deadcam"}, &dead); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	closed := peers.FreeAddr(t) // nothing listens here
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", dead.ID),
		map[string]any{"type": "pull", "name": "camera", "source": "rtsp://" + closed + "/cam", "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create pull config: HTTP %d %v", code, cfg)
	}
	t1 := time.Now()
	var failing apiTask
	testutil.Eventually(t, 30*time.Second, "unreachable pull failing with a reason", func() bool {
		ts := a.tasks(t, dead.ID)
		if len(ts) == 1 {
			failing = ts[0]
		}
		return len(ts) == 1 && (failing.State == "backoff" || failing.State == "failed") && failing.LastError != ""
	})
	t.Logf("unreachable source: state %s after %v, last_error %q", failing.State, time.Since(t1).Round(time.Millisecond), failing.LastError)
	if !strings.Contains(failing.LastError, "source refused connection") {
		t.Errorf("last_error %q, want it to say the source refused the connection", failing.LastError)
	}
	// Watch for 12 s: with delays 1+2+4+8 s at most ~5 failures fit (a
	// busy loop would make dozens), and the count keeps growing.
	window := 12 * time.Second
	time.Sleep(window) // an observation window, not a wait for a condition
	after := a.tasks(t, dead.ID)[0]
	t.Logf("after %v more: restarts %d → %d, state %s, last_error %q", window, failing.Restarts, after.Restarts, after.State, after.LastError)
	if n := after.Restarts - failing.Restarts; n < 1 || n > 5 {
		t.Errorf("%d restarts in %v, want 1..5 (exponential backoff from 1 s)", n, window)
	}
	if live := a.live(t, dead.ID); live {
		t.Error("a stream whose pull source is unreachable is live")
	}
}
