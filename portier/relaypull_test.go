package portier

import (
	"context"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// The node API's side of relay pulls: an origin registers the rtsp-pull
// capability, sends "pulls" in its heartbeat and gets its full set back
// with the stream's key; an older origin (no "pulls") gets null and keeps
// what it runs; an RTSP pull config's task carries the source for it.
func TestHeartbeatRelayPulls(t *testing.T) {
	e := newLiveEnv(t, modelstest.SQLite(t))
	ctx := context.Background()
	for _, n := range []map[string]any{
		{"name": "o-old", "role": "origin", "rtmp_address": "127.0.0.1:1935"},
		{"name": "o-new", "role": "origin", "rtmp_address": "127.0.0.1:1936", "capabilities": []string{nodewire.CapRTSPPull}},
	} {
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", n); code != 200 {
			t.Fatalf("register %v: %d %v", n["name"], code, out)
		}
	}
	cfg := e.addConfig(t, models.TypePull, "cam", `{"source":"rtsp://cam.example.com/s1"}`, true)
	ts := e.tasks(t)
	if len(ts) != 1 || ts[0].Description.RelayPull == nil || ts[0].Description.RelayPull.Source != "rtsp://cam.example.com/s1" {
		t.Fatalf("pull task %+v, want the RTSP source for an origin", ts)
	}
	now := e.clock.now()
	first := func(o []models.PullOrigin, ts []models.SchedTask) []models.PlaceDecision {
		out := make([]models.PlaceDecision, len(ts))
		for i, x := range ts {
			out[i] = models.PlaceDecision{TaskID: x.ID, Node: o[0].Name}
		}
		return out
	}
	got, err := e.store.PlaceRelayPulls(ctx, now, 5*time.Second, now.Add(-3*time.Second), first)
	if err != nil || len(got) != 1 || got[0].Node != "o-new" {
		t.Fatalf("placed %v, %v; want on o-new, the origin that can pull", got, err)
	}
	code, out := e.call(t, "POST", "/internal/v1/nodes/o-old/heartbeat", map[string]any{"load": map[string]any{}, "published": []string{}})
	if code != 200 || out["pulls"] != nil {
		t.Fatalf("older origin's heartbeat: %d, pulls %v; want null", code, out["pulls"])
	}
	code, out = e.call(t, "POST", "/internal/v1/nodes/o-new/heartbeat", map[string]any{"load": map[string]any{}, "published": []string{},
		"pulls": []map[string]any{}})
	pulls, _ := out["pulls"].([]any)
	if code != 200 || len(pulls) != 1 {
		t.Fatalf("o-new's heartbeat: %d, pulls %v; want one", code, out["pulls"])
	}
	p := pulls[0].(map[string]any)
	if p["path"] != "live/show" || p["key"] != e.stream.PublishKey || p["url"] != "rtsp://cam.example.com/s1" {
		t.Fatalf("o-new's pull %v", p)
	}
	// Playing: the task runs on o-new. Deleted: the next answer is empty.
	e.call(t, "POST", "/internal/v1/nodes/o-new/heartbeat", map[string]any{"load": map[string]any{}, "published": []string{},
		"pulls": []map[string]any{{"task_id": p["task_id"], "path": "live/show", "playing": true}}})
	if ts := e.tasks(t); ts[0].State != models.TaskRunning || ts[0].NodeName != "o-new" {
		t.Fatalf("after a playing report: %s on %s", ts[0].State, ts[0].NodeName)
	}
	if err := e.srv.lv.ConfigDeleting(ctx, cfg.ID); err != nil {
		t.Fatal(err)
	}
	_, out = e.call(t, "POST", "/internal/v1/nodes/o-new/heartbeat", map[string]any{"load": map[string]any{}, "published": []string{},
		"pulls": []map[string]any{{"task_id": p["task_id"], "path": "live/show", "playing": true}}})
	if pulls, ok := out["pulls"].([]any); !ok || len(pulls) != 0 {
		t.Fatalf("after the config was deleted: pulls %v, want []", out["pulls"])
	}
	if ts := e.tasks(t); ts[0].State != models.TaskStopped {
		t.Fatalf("after the config was deleted: task %s", ts[0].State)
	}
}
