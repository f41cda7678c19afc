package portier

import (
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

// A registration under a live node's name from another role or address is
// refused with 409 and a body that names the clash and the fix; the same
// node re-registers; a dead node's name is free.
func TestNodeRegisterNameClash(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		origin := map[string]any{"name": "studio-1", "role": "origin", "rtmp_address": "127.0.0.1:1935", "http_address": "127.0.0.1:8081", "host": "studio-1"}
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", origin); code != 200 {
			t.Fatalf("register origin: %d %v", code, out)
		}
		edge := map[string]any{"name": "studio-1", "role": "edge", "rtmp_address": "127.0.0.1:1936", "http_address": "127.0.0.1:8083", "host": "studio-1"}
		code, out := e.call(t, "POST", "/internal/v1/nodes/register", edge)
		if code != 409 {
			t.Fatalf("register edge under the origin's name: %d %v, want 409", code, out)
		}
		er, _ := out["error"].(map[string]any)
		msg, _ := er["message"].(string)
		if er["code"] != "name_taken" || er["field"] != "name" {
			t.Errorf("409 error %v, want code name_taken on field name", er)
		}
		for _, want := range []string{`"studio-1"`, "live origin", "127.0.0.1:1935", "--name"} {
			if !strings.Contains(msg, want) {
				t.Errorf("409 message %q does not mention %s", msg, want)
			}
		}
		holder, _ := out["holder"].(map[string]any)
		if holder["role"] != "origin" || holder["rtmp_address"] != "127.0.0.1:1935" || holder["http_address"] != "127.0.0.1:8081" {
			t.Errorf("409 holder %v", holder)
		}
		// The origin is untouched and still heartbeats under its name.
		if code := e.heartbeat(t, "studio-1"); code != 200 {
			t.Fatalf("origin heartbeat after the refused claim: %d", code)
		}
		code, out = e.call(t, "GET", "/internal/v1/nodes?role=origin", nil)
		if nodes, _ := out["nodes"].([]any); code != 200 || len(nodes) != 1 {
			t.Fatalf("origins after the refused claim: %d %v", code, out)
		}
		// The refusal is audited.
		evs, _, err := e.store.ListAudit(t.Context(), models.AuditFilter{Action: "node.register"})
		if err != nil || len(evs) != 1 || evs[0].Result != "denied" {
			t.Fatalf("audit of the refusal: %+v %v", evs, err)
		}

		// A restart of the same node re-registers.
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", origin); code != 200 {
			t.Fatalf("origin restart: %d %v", code, out)
		}
		// A clean shutdown (leave) frees the name at once; only the node itself can leave.
		if code, out := e.call(t, "POST", "/internal/v1/nodes/leave", edge); code != 200 || out["released"] != false {
			t.Fatalf("leave by another node: %d %v", code, out)
		}
		if code, out := e.call(t, "POST", "/internal/v1/nodes/leave", origin); code != 200 || out["released"] != true {
			t.Fatalf("leave: %d %v", code, out)
		}
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", edge); code != 200 {
			t.Fatalf("claim after the holder left: %d %v", code, out)
		}
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", origin); code != 409 {
			t.Fatalf("the origin back under the edge's name: %d %v", code, out)
		}
		// Once the edge stopped heartbeating for the alive window, the name is free.
		e.clock.add(3*time.Second + time.Millisecond)
		if code, out := e.call(t, "POST", "/internal/v1/nodes/register", origin); code != 200 {
			t.Fatalf("claim of a dead node's name: %d %v", code, out)
		}
	})
}

// The stream directory answers only live origins: an edge recorded as a
// stream's holder is never handed to another edge as its origin.
func TestDirectoryAnswersOnlyOrigins(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		e.register(t, "edge-1", "edge")
		code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "edge-1", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
		if code != 200 {
			t.Fatalf("authorize: %d %v", code, out)
		}
		if code, out := e.call(t, "GET", "/internal/v1/directory/live/show", nil); code != 404 {
			t.Fatalf("directory answered an edge as the origin: %d %v", code, out)
		}
		e.register(t, "origin-1", "origin")
		e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-1", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
		code, out = e.call(t, "GET", "/internal/v1/directory/live/show", nil)
		origins, _ := out["origins"].([]any)
		if code != 200 || len(origins) != 1 || origins[0].(map[string]any)["name"] != "origin-1" || origins[0].(map[string]any)["role"] != "origin" {
			t.Fatalf("directory: %d %v, want only origin-1", code, out)
		}
	})
}
