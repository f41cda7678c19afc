package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/portiertest"
	"github.com/portier/portier/tests/peers"
)

// TestConciergeRestream is the whole path of a restream: ffmpeg publishes
// to a relay origin, the control plane compiles the stream's restream
// config into a task, the scheduler assigns it to a concierge, whose
// supervisord runs ffmpeg from the relay to nginx-rtmp; ffprobe on nginx
// sees the stream. Stopping the publish stops the task and its process.
func TestConciergeRestream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nginx := peers.NginxRTMP(t, peers.NginxOpts{})
	relayAddr := peers.FreeAddr(t)

	cp := portiertest.Start(t, portiertest.Options{Params: portier.Params{ClusterToken: "rs-token", Logger: cgLogger(t),
		Live: portier.LiveParams{HeartbeatInterval: 500 * time.Millisecond,
			Compile: compile.Env{FFmpeg: "ffmpeg", RelayRTMPURL: "rtmp://" + relayAddr}}}})
	store, hs := cp.Store, cp.HTTP

	origin, err := relay.New(relay.Params{Role: relay.RoleOrigin, Name: "origin-1", RTMPAddr: relayAddr,
		ControlURL: hs.URL, ClusterToken: "rs-token", Logger: cgLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := origin.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })

	dataDir := t.TempDir()
	marker := dataDirMarker(t, dataDir)
	c, err := concierge.New(concierge.Params{Control: hs.URL, ClusterToken: "rs-token", Name: "rs-concierge", Capacity: 2,
		DataDir: dataDir, SupervisorBinary: supervisortest.Python(t), DrainTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(cgTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopConcierge := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() { stopConcierge(); <-done })

	u, err := store.CreateUser(ctx, "rs", "rs-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.CreateStream(ctx, "live", "rs", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRestream, Name: "to-nginx", Enabled: true,
		Spec: models.MustJSON(models.RestreamSpec{Target: "rtmp://" + nginx.RTMPAddr + "/live", Key: "copy"})}
	if err := store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	t0 := time.Now()
	pub := peers.Publish(t, pubCtx, "rtmp://"+relayAddr+"/live/rs?key="+st.PublishKey, peers.PublishOpts{})
	var task models.Task
	cgWait(t, "restream task running", 30*time.Second, func() bool {
		ts, _, _ := store.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
		if len(ts) == 1 {
			task = ts[0]
		}
		return len(ts) == 1 && ts[0].State == models.TaskRunning
	})
	t.Logf("publish to restream task running on %s: %v", task.NodeName, time.Since(t0).Round(time.Millisecond))
	probeCtx, cancelProbe := context.WithTimeout(ctx, 30*time.Second)
	res, err := peers.ProbeUntil(t, probeCtx, nginx.RTMPURL("live", "copy"))
	cancelProbe()
	if err != nil {
		t.Fatalf("ffprobe on nginx-rtmp: %v", err)
	}
	if !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("restreamed codecs %v, want h264 and aac", res.Codecs())
	}
	t.Logf("ffprobe on the restream target: %v after the publish started", time.Since(t0).Round(time.Millisecond))
	if n := len(taskProcs(task.ID, marker)); n != 1 {
		t.Fatalf("%d processes run the restream, want 1", n)
	}

	// Stopping the publish stops the task.
	t1 := time.Now()
	stopPub()
	pub.Wait()
	last := ""
	cgWait(t, "restream task stopped", 20*time.Second, func() bool {
		cur, err := store.TaskByID(ctx, task.ID)
		if err != nil {
			return false
		}
		if now := fmt.Sprintf("desired %s, state %s, %d processes", cur.DesiredState, cur.State, len(taskProcs(task.ID, marker))); now != last {
			t.Logf("+%v: %s", time.Since(t1).Round(time.Millisecond), now)
			last = now
		}
		return cur.State == models.TaskStopped && len(taskProcs(task.ID, marker)) == 0
	})
	t.Logf("publish stop to restream stopped (state and process): %v", time.Since(t1).Round(time.Millisecond))
}
