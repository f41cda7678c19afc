package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"

	"github.com/portier/portier/tests/peers"
)

// revokeMargin is what a revocation may take beyond one heartbeat interval
// (1 s in `portier run`): the heartbeat's round trip, the relay closing the
// connection and ffmpeg noticing.
const revokeMargin = 2 * time.Second

// publishLive starts ffmpeg publishing to url and waits until the stream
// is live and ffmpeg is sending frames.
func (a *allInOne) publishLive(t *testing.T, ctx context.Context, url string, id uint) *peers.Proc {
	t.Helper()
	pub := peers.Publish(t, ctx, url, peers.PublishOpts{})
	testutil.Eventually(t, 20*time.Second, "stream live", func() bool { return a.live(t, id) })
	if err := pub.WaitFrames(ctx, 50); err != nil {
		t.Fatalf("publisher sends no frames: %v\n%s", err, pub.Stderr())
	}
	return pub
}

// waitClosed waits for the publisher's process to end (the relay closed
// its connection) and returns how long it took since start.
func waitClosed(t *testing.T, pub *peers.Proc, start time.Time, what string) time.Duration {
	t.Helper()
	select {
	case <-pub.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the publisher is still connected after 30 s", what)
	}
	d := time.Since(start)
	t.Logf("%s: publisher closed %v after the change", what, d.Round(time.Millisecond))
	if d > time.Second+revokeMargin {
		t.Errorf("%s: the publisher was closed after %v, want within one heartbeat (1 s) + %v", what, d, revokeMargin)
	}
	return d
}

// auditHas reports whether the audit log has an event of action on stream
// id naming node, whose reason contains why.
func (a *allInOne) auditHas(t *testing.T, action string, id uint, node, why string) bool {
	t.Helper()
	var out struct {
		Items []struct {
			Action, Object, Node, Reason string
		} `json:"items"`
	}
	a.api(t, "GET", "/api/v1/audit?limit=100&action="+action, nil, &out)
	for _, e := range out.Items {
		if e.Object == models.StreamObject(int64(id)) && e.Node == node && strings.Contains(e.Reason, why) {
			return true
		}
	}
	return false
}

// Disabling a stream, rotating its key or deleting it ends its running
// publish within one heartbeat: a real ffmpeg publishing to `portier run`
// is disconnected, the stream shows live=false, the audit log names the
// stream, the relay and why, and a publisher that reconnects with the old
// key is refused.
func TestRevocationEndsRunningPublish(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t)
	const relayNode = "e2e-origin"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "cam1"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	path := fmt.Sprintf("/api/v1/streams/%d", st.ID)

	// Disable.
	pub := a.publishLive(t, ctx, st.Ingest.RTMPURL, st.ID)
	start := time.Now()
	if code := a.api(t, "PATCH", path, map[string]any{"enabled": false}, nil); code != 200 {
		t.Fatalf("disable: HTTP %d", code)
	}
	waitClosed(t, pub, start, "disable")
	if a.live(t, st.ID) {
		t.Fatal("live=true after the disable")
	}
	if !a.auditHas(t, "publish.revoke", st.ID, relayNode, "disabled") || !a.auditHas(t, "publish.end", st.ID, relayNode, "disabled") {
		t.Fatal("no audit events naming the stream, the relay and the disable")
	}
	if code := a.api(t, "PATCH", path, map[string]any{"enabled": true}, nil); code != 200 {
		t.Fatalf("enable: HTTP %d", code)
	}

	// Rotate the key; the old key is refused afterwards.
	pub = a.publishLive(t, ctx, st.Ingest.RTMPURL, st.ID)
	var rotated apiStream
	start = time.Now()
	if code := a.api(t, "POST", path+"/rotate-key", nil, &rotated); code != 200 || rotated.Key == st.Key {
		t.Fatalf("rotate key: HTTP %d", code)
	}
	waitClosed(t, pub, start, "key rotation")
	if a.live(t, st.ID) {
		t.Fatal("live=true after the key rotation")
	}
	if !a.auditHas(t, "publish.end", st.ID, relayNode, "key rotated") {
		t.Fatal("no audit event naming the stream, the relay and the key rotation")
	}
	old := peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{Duration: 20 * time.Second})
	if _, done := old.WaitTimeout(15 * time.Second); !done || old.ExitCode() == 0 {
		t.Fatalf("a publisher reconnecting with the old key was not refused:\n%s", old.Stderr())
	}
	if a.live(t, st.ID) {
		t.Fatal("live=true after a publish with the old key")
	}

	// Delete.
	pub = a.publishLive(t, ctx, rotated.Ingest.RTMPURL, st.ID)
	start = time.Now()
	if code := a.api(t, "DELETE", path, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d", code)
	}
	waitClosed(t, pub, start, "delete")
	if !a.auditHas(t, "publish.end", st.ID, relayNode, "deleted") {
		t.Fatal("no audit event naming the stream, the relay and the delete")
	}
}
