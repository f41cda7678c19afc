package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/portiertest"
	"github.com/portier/portier/tests/peers"
)

// An RTSP pull config made through the REST API is pulled by an origin
// relay itself, not by ffmpeg on a concierge (there is none here): the
// control plane gives the task to the least loaded origin that can pull
// and tells it in its heartbeat answer. The task shows the origin as its
// node and runs when the origin reports the pull playing; ffprobe plays
// the stream from an edge over RTMP. When that origin is killed, the pull
// moves to the other origin and the stream is live again; deleting the
// config stops the pull.
func TestRTSPPullConfigFailover(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp := portiertest.Start(t, portiertest.Options{Params: portier.Params{ClusterToken: relayClusterToken,
		Logger: testLogger(t, "control"), Live: portier.LiveParams{HeartbeatInterval: 200 * time.Millisecond}}})
	u, err := cp.Store.CreateUser(ctx, "owner", "owner-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := cp.Store.CreateToken(ctx, u.ID, "e2e", []string{"read", "write"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &allInOne{http: strings.TrimPrefix(cp.HTTP.URL, "http://"), token: tok}

	mtx := peers.StartMediaMTX(t, peers.MediaMTXOpts{LogLevel: "warn"})
	cam := peers.Publish(t, ctx, mtx.RTSPURL("cam"), peers.PublishOpts{Format: "rtsp", RTSPTransport: "tcp"})
	if err := cam.WaitFrames(ctx, 25); err != nil {
		t.Fatalf("camera encoder: %v", err)
	}
	origins := map[string]*relayProc{
		"origin-1": startRelayProc(t, "origin-1", "origin", cp.HTTP.URL),
		"origin-2": startRelayProc(t, "origin-2", "origin", cp.HTTP.URL),
	}
	edge := startRelayProc(t, "edge-1", "edge", cp.HTTP.URL)

	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "cam"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	t0 := time.Now()
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "pull", "name": "camera", "source": mtx.RTSPURL("cam"), "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create pull config: HTTP %d %v", code, cfg)
	}
	var task apiTask
	running := func() bool {
		ts := a.tasks(t, st.ID)
		for _, x := range ts {
			if x.State == "running" {
				task = x
				return a.live(t, st.ID)
			}
		}
		return false
	}
	testutil.Eventually(t, 30*time.Second, "the pull task running on an origin and the stream live", running)
	t.Logf("pull config to stream live: %v (task on %s)", time.Since(t0).Round(time.Millisecond), task.Node)
	first := origins[task.Node]
	if first == nil {
		t.Fatalf("pull task on node %q, want an origin", task.Node)
	}
	if p := relayPulls(t, first.httpAddr); len(p) != 1 || !p[0].Playing || p[0].Path != "live/cam" || strings.Contains(p[0].URL, "@") {
		t.Fatalf("%s pulls %+v, want live/cam playing", task.Node, p)
	}
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+edge.rtmpAddr+"/live/cam")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("ffprobe RTMP from the edge: codecs %v, err %v", res.Codecs(), err)
	}
	t.Logf("ffprobe plays the pulled stream from the edge %v after the config was made", time.Since(t0).Round(time.Millisecond))

	// The origin that pulls dies: the pull moves to the other one.
	dead := task.Node
	t1 := time.Now()
	first.kill(syscall.SIGKILL)
	testutil.Eventually(t, 30*time.Second, "the pull running on the other origin, the stream live", func() bool {
		return running() && task.Node != dead
	})
	t.Logf("origin %s killed: pull running on %s and the stream live after %v", dead, task.Node, time.Since(t1).Round(time.Millisecond))
	second := origins[task.Node]
	if _, err := peers.ProbeUntil(t, ctx, "rtmp://"+edge.rtmpAddr+"/live/cam"); err != nil {
		t.Fatalf("ffprobe RTMP from the edge after the failover: %v", err)
	}
	t.Logf("ffprobe plays from the edge again %v after the kill", time.Since(t1).Round(time.Millisecond))

	// Deleting the config stops the pull within a heartbeat or so.
	t2 := time.Now()
	if code := a.api(t, "DELETE", fmt.Sprintf("/api/v1/streams/%d/task-configs/%v", st.ID, cfg["id"]), nil, nil); code/100 != 2 {
		t.Fatalf("delete pull config: HTTP %d", code)
	}
	testutil.Eventually(t, 10*time.Second, "the pull stopped and the stream offline", func() bool {
		return len(relayPulls(t, second.httpAddr)) == 0 && !a.live(t, st.ID)
	})
	t.Logf("config deleted: pull stopped and stream offline after %v", time.Since(t2).Round(time.Millisecond))
	for _, x := range a.tasks(t, st.ID) {
		if x.State != "stopped" {
			t.Errorf("task %d %s on %s after the config was deleted, want stopped", x.ID, x.State, x.Node)
		}
	}
}
