package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

// streamReport is one element of a heartbeat's "streams" as a relay sends it.
func streamReport(path string, publisher bool, players int, bitrate int64) map[string]any {
	return map[string]any{"path": path, "publisher": publisher, "video_codec": "h264", "width": 640, "height": 360,
		"fps": 25.0, "audio_codec": "aac", "sample_rate": 44100, "channels": 2, "bitrate_in": bitrate, "players": players}
}

func (e *liveEnv) statsHeartbeat(t *testing.T, node string, published []string, streams ...map[string]any) {
	t.Helper()
	if published == nil {
		published = []string{}
	}
	if streams == nil {
		streams = []map[string]any{}
	}
	code, out := e.call(t, "POST", "/internal/v1/nodes/"+node+"/heartbeat", map[string]any{
		"load": map[string]any{"connections": 1}, "published": published, "streams": streams})
	if code != 200 {
		t.Fatalf("heartbeat of %s: %d %v", node, code, out)
	}
}

// apiStream GETs the env's stream through the REST API as its owner.
func (e *liveEnv) apiStream(t *testing.T) map[string]any {
	t.Helper()
	return e.apiGet(t, fmt.Sprintf("/api/v1/streams/%d", e.stream.ID))
}

// apiGet GETs path from the REST API as the owner of the env's stream.
func (e *liveEnv) apiGet(t *testing.T, path string) map[string]any {
	t.Helper()
	tok, _, err := e.store.CreateToken(context.Background(), e.stream.OwnerID, "stats", []string{"read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
	}
	return out
}

func TestHeartbeatStreamStatsInAPI(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		e.register(t, "origin-1", "origin")
		e.register(t, "edge-1", "edge")
		e.register(t, "edge-2", "edge")
		if v := e.apiStream(t); v["stats"] != nil {
			t.Fatalf("offline stream has stats %v", v["stats"])
		}
		// The origin publishes; two edges pull it (2 of the origin's 3
		// players) and serve 4 and 1 players.
		e.statsHeartbeat(t, "edge-1", nil, streamReport("live/show", true, 4, 1_900_000))
		e.statsHeartbeat(t, "edge-2", nil, streamReport("live/show", true, 1, 1_900_000))
		e.clock.add(1500 * time.Millisecond)
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, streamReport("live/show", true, 3, 2_000_000),
			streamReport("live/unknown", true, 0, 1))
		e.clock.add(2 * time.Second)
		v := e.apiStream(t)
		st, _ := v["stats"].(map[string]any)
		want := map[string]any{"video_codec": "h264", "width": 640.0, "height": 360.0, "fps": 25.0, "audio_codec": "aac",
			"sample_rate": 44100.0, "channels": 2.0, "bitrate": 2e6, "viewers": 6.0, "uptime_seconds": 2.0}
		for k, w := range want {
			if st[k] != w {
				t.Errorf("stats.%s = %v, want %v (stats %v)", k, st[k], w, st)
			}
		}
		// The list shows the same statistics.
		items, _ := e.apiGet(t, "/api/v1/streams")["items"].([]any)
		if len(items) != 1 {
			t.Fatalf("list: %v", items)
		}
		if ls, _ := items[0].(map[string]any)["stats"].(map[string]any); ls["viewers"] != 6.0 || ls["uptime_seconds"] != 2.0 {
			t.Fatalf("list stats %v", ls)
		}

		// A body that is not a list is refused; odd entries are left out
		// and the rest of the heartbeat counts.
		if code, out := e.call(t, "POST", "/internal/v1/nodes/edge-1/heartbeat", map[string]any{"load": map[string]any{}, "streams": "nope"}); code != 400 {
			t.Errorf("streams \"nope\": %d %v, want 400", code, out)
		}
		e.statsHeartbeat(t, "edge-2", nil, streamReport("live/show", true, 1, 1_900_000),
			map[string]any{"path": "no-slash", "players": 1}, map[string]any{"path": "live/show", "players": -1},
			map[string]any{"path": "live/x y", "players": 1}, map[string]any{"path": "live/show", "fps": 1e9})
		if rows, _ := e.store.StreamStats(ctx, e.stream.ID, time.Time{}); len(rows) != 3 {
			t.Fatalf("rows after a heartbeat with odd entries: %+v", rows)
		}

		// Edges that stop heartbeating leave the count after 3 intervals.
		e.clock.add(4 * time.Second)
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, streamReport("live/show", true, 2, 2_100_000))
		if err := e.srv.lv.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := e.store.StreamStats(ctx, e.stream.ID, time.Time{})
		if err != nil || len(rows) != 1 || rows[0].NodeName != "origin-1" {
			t.Fatalf("rows after the reaper: %+v %v", rows, err)
		}
		if st, _ := e.apiStream(t)["stats"].(map[string]any); st["viewers"] != 2.0 || st["bitrate"] != 2.1e6 {
			t.Fatalf("stats without the edges: %v (want 2 viewers: the edges' pulls are gone)", st)
		}

		// A relay that sends no "streams" (an older one) leaves its rows.
		e.heartbeat(t, "origin-1", "live/show")
		if rows, _ := e.store.StreamStats(ctx, e.stream.ID, time.Time{}); len(rows) != 1 {
			t.Fatalf("heartbeat without streams changed the rows: %+v", rows)
		}
	})
}

func TestUIClusterShowsPlayersPerEdge(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "onair")
	now := time.Now()
	if _, err := e.store.RegisterNode(ctx, models.Node{Name: "edge-a", Role: models.NodeRoleEdge, RTMPAddress: "10.0.0.2:1935"}, now); err != nil {
		t.Fatal(err)
	}
	err := e.store.UpdateNodeStreamStats(ctx, "edge-a", models.NodeRoleEdge, []models.StreamStatReport{
		{App: "live", Name: st.Name, Publisher: true, Players: 3},
	}, now, now.Add(-3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, doc := e.login("admin").get("/cluster", http.StatusOK)
	if row := doc.Find(`tr[data-node="edge-a"]`).Text(); !strings.Contains(row, "live/onair 3 players") {
		t.Fatalf("edge row does not show its players: %q", row)
	}
}

// The origin's report of the publisher (address, protocol, encoder) and of
// the GOP reaches the API; a relay that leaves them out (an older one)
// gives statistics without them, and client-supplied text that is too
// long or has control characters is left out.
func TestHeartbeatPublisherAndGOPInAPI(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		e.register(t, "origin-1", "origin")
		e.register(t, "edge-1", "edge")
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, streamReport("live/show", true, 0, 2_000_000))
		st, _ := e.apiStream(t)["stats"].(map[string]any)
		for _, k := range []string{"publisher_addr", "publisher_protocol", "encoder", "gop_seconds", "gop_frames"} {
			if _, ok := st[k]; ok {
				t.Errorf("stats from an older relay have %s: %v", k, st)
			}
		}
		report := streamReport("live/show", true, 0, 2_000_000)
		for k, v := range map[string]any{"publisher_addr": "192.0.2.7:50312", "publisher_protocol": "rtmp",
			"encoder": "obs-output module (libobs version 30.1.2)", "gop_ms": 2000, "gop_frames": 50} {
			report[k] = v
		}
		// An edge's view (its upstream pull from the origin) is not the
		// publisher's.
		edge := streamReport("live/show", true, 1, 2_000_000)
		edge["publisher_addr"], edge["publisher_protocol"], edge["gop_ms"] = "127.0.0.1:1935", "edge-pull", 1000
		e.statsHeartbeat(t, "edge-1", nil, edge)
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, report)
		st, _ = e.apiStream(t)["stats"].(map[string]any)
		want := map[string]any{"publisher_addr": "192.0.2.7:50312", "publisher_protocol": "rtmp",
			"encoder": "obs-output module (libobs version 30.1.2)", "gop_seconds": 2.0, "gop_frames": 50.0}
		for k, w := range want {
			if st[k] != w {
				t.Errorf("stats.%s = %v, want %v (stats %v)", k, st[k], w, st)
			}
		}

		report["encoder"] = "evil\x1b[31m"
		report["publisher_addr"] = strings.Repeat("9", 65)
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, report)
		st, _ = e.apiStream(t)["stats"].(map[string]any)
		if _, ok := st["encoder"]; ok || st["publisher_addr"] != nil || st["publisher_protocol"] != "rtmp" {
			t.Errorf("stats with a control character in the encoder and a 65-byte address: %v", st)
		}
		report["gop_ms"] = -1
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, report)
		if st, _ = e.apiStream(t)["stats"].(map[string]any); st["gop_seconds"] != 2.0 {
			t.Errorf("a report with a negative GOP replaced the last good one: %v", st)
		}
	})
}
