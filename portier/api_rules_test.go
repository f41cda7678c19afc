package portier

import (
	"strings"
	"testing"

	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
)

// TestAPIRefusesWhatTheCompilerRefuses: inputs that the task compiler
// always refused (names starting with - or _, HLS audio bitrates above 512,
// flv over srt) are refused by the API with 400, the field and the one
// wording of the rule.
func TestAPIRefusesWhatTheCompilerRefuses(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
		cfgs := "/streams/" + id(s) + "/task-configs"
		hls := e.mustDo("op1", "POST", cfgs, `{"type":"hls","name":"ladder","renditions":[{"name":"r1","width":640,"height":360,"video_bitrate_kbps":800,"audio_bitrate_kbps":512}]}`, 201)
		rend := func(name string, ab int) string {
			return `{"type":"hls","name":"h` + strings.Repeat("x", ab%7) + `","renditions":[{"name":"` + name + `","width":640,"height":360,"video_bitrate_kbps":800,"audio_bitrate_kbps":` + jsonNum(ab) + `}]}`
		}
		for _, tc := range []struct {
			who, method, path, body, field, says string
		}{
			{"op1", "POST", "/streams", `{"name":"-cam"}`, "name", compile.NameRule},
			{"op1", "POST", "/streams", `{"name":"_cam"}`, "name", compile.NameRule},
			{"op1", "POST", "/streams", `{"name":"cam","app":"-live"}`, "app", compile.NameRule},
			{"op1", "POST", "/streams", `{"name":"cam","app":"_live"}`, "app", compile.NameRule},
			{"op1", "POST", "/streams", `{"name":"cam.v2"}`, "name", compile.NameRule},
			{"op1", "PATCH", "/streams/" + id(s), `{"name":"-x"}`, "name", compile.NameRule},
			{"admin", "POST", "/applications", `{"name":"_app"}`, "name", compile.NameRule},
			{"op1", "POST", cfgs, `{"type":"record","name":"-r"}`, "name", compile.NameRule},
			{"op1", "PATCH", cfgs + "/" + id(hls), `{"name":"_r"}`, "name", compile.NameRule},
			{"op1", "POST", cfgs, rend("-low", 128), "renditions[0].name", compile.NameRule},
			{"op1", "POST", cfgs, rend("low", 513), "renditions[0].audio_bitrate_kbps", "between 16 and 512"},
			{"op1", "POST", cfgs, rend("low", 1024), "renditions[0].audio_bitrate_kbps", "between 16 and 512"},
			{"op1", "POST", cfgs, rend("low", 8), "renditions[0].audio_bitrate_kbps", "between 16 and 512"},
			{"op1", "PATCH", cfgs + "/" + id(hls), `{"renditions":[{"name":"r1","width":640,"height":360,"video_bitrate_kbps":800,"audio_bitrate_kbps":1000}]}`, "renditions[0].audio_bitrate_kbps", "between 16 and 512"},
			{"op1", "POST", cfgs, `{"type":"restream","name":"s","target":"srt://10.0.0.1:9000","format":"flv"}`, "format", "srt"},
			{"op1", "POST", cfgs, `{"type":"restream","name":"s","target":"rtmp://10.0.0.1/live","format":"mpegts"}`, "format", "srt"},
		} {
			code, body := e.do(tc.who, tc.method, tc.path, tc.body)
			c, f := errCode(body)
			if code != 400 || c != httperr.CodeInvalid || f != tc.field || !strings.Contains(jsonNum(body), tc.says) {
				t.Errorf("%s %s %s: %d %v, want 400 on %s saying %q", tc.method, tc.path, tc.body, code, body, tc.field, tc.says)
			}
		}
		// What the API accepts, the compiler accepts.
		for _, n := range []string{"cam-2", "Cam_3", "9x"} {
			e.mustDo("op1", "POST", "/streams", `{"name":"`+n+`"}`, 201)
			if _, err := compile.Compile(compile.TaskConfigInput{Type: compile.TypeRecord}, compile.StreamState{ID: 1, App: "live", Name: n},
				compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1935", RecordDir: "/rec"}); err != nil {
				t.Errorf("compile %s: %v", n, err)
			}
		}
	})
}
