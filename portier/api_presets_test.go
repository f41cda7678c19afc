package portier

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAPIPresets: GET /presets lists the platforms' ingests with their key
// shapes and the HLS ladders; a config made from them saves, and a key of
// the wrong shape for a platform is a 400 on the field key naming the shape.
func TestAPIPresets(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		p := e.mustDo("viewer", "GET", "/presets", "", 200)
		targets := map[string]map[string]any{}
		for _, x := range p["restream_targets"].([]any) {
			m := x.(map[string]any)
			targets[m["id"].(string)] = m
		}
		for id, want := range map[string]string{"youtube": "rtmp://a.rtmp.youtube.com/live2", "youtube-backup": "rtmp://b.rtmp.youtube.com/live2?backup=1",
			"twitch": "rtmp://live.twitch.tv/app", "facebook": "rtmps://live-api-s.facebook.com:443/rtmp/", "restream-io": "rtmp://live.restream.io/live"} {
			if targets[id] == nil || targets[id]["target"] != want {
				t.Errorf("preset %s: %v, want target %s", id, targets[id], want)
			}
		}
		if targets["youtube"]["key_shape"] != "xxxx-xxxx-xxxx-xxxx-xxxx" || targets["twitch"]["key_shape"] != "live_…" || targets["facebook"]["key_shape"] != "FB-…" {
			t.Errorf("key shapes: %v %v %v", targets["youtube"]["key_shape"], targets["twitch"]["key_shape"], targets["facebook"]["key_shape"])
		}
		ladders := map[string][]any{}
		costs := map[string]any{}
		for _, x := range p["hls_ladders"].([]any) {
			m := x.(map[string]any)
			ladders[m["id"].(string)] = m["renditions"].([]any)
			costs[m["id"].(string)] = m["cost"]
		}
		// Costs in CPU cores, as task costs and capacity: 720p + 480p +
		// 360p is 4 + 1.78 + 1 cores of encoding; a copy a tenth.
		if costs["720p"] != 6.78 || costs["copy"] != 0.1 {
			t.Errorf("ladder costs %v, want 720p 6.78 and copy 0.1 (cores)", costs)
		}
		if len(ladders["1080p"]) != 4 || len(ladders["720p"]) != 3 || len(ladders["480p"]) != 2 || len(ladders["audio"]) != 1 || len(ladders["copy"]) != 1 {
			t.Fatalf("ladders %v", ladders)
		}
		if r := ladders["1080p"][0].(map[string]any); r["width"] != float64(1920) || r["height"] != float64(1080) || r["video_bitrate_kbps"] != float64(5000) {
			t.Errorf("1080p rung %v", r)
		}

		s := e.mustDo("op1", "POST", "/streams", `{"name":"presets"}`, 201)
		base := "/streams/" + id(s) + "/task-configs"
		e.mustDo("op1", "POST", base, `{"type":"restream","name":"yt","target":"rtmp://a.rtmp.youtube.com/live2","key":"abcd-1234-efgh-5678-ijkl"}`, 201)
		code, body := e.do("op1", "POST", base, `{"type":"restream","name":"tw","target":"rtmp://live.twitch.tv/app","key":"abcd-1234-efgh-5678-ijkl"}`)
		er, _ := body["error"].(map[string]any)
		if code != 400 || er["field"] != "key" || !strings.Contains(er["message"].(string), "live_…") {
			t.Errorf("YouTube key for Twitch: %d %v, want 400 on key naming live_…", code, body)
		}
		// A ladder preset's renditions are a valid config as they are.
		e.mustDo("op1", "POST", base, `{"type":"hls","name":"ladder","renditions":`+mustJSON(t, ladders["720p"])+`}`, 201)
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
