package portier

import (
	"encoding/json"
	"testing"
)

// TestAPIHLSPresets: a ladder named by presets is stored expanded (what the
// compiler will run), and copy and audio-only renditions keep no size.
func TestAPIHLSPresets(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"ladder"}`, 201)
		base := "/streams/" + id(s) + "/task-configs"
		c := e.mustDo("op1", "POST", base, `{"type":"hls","name":"abr","renditions":[{"preset":"1080p"},{"preset":"480p","name":"sd","video_bitrate_kbps":1000},{"preset":"copy","name":"src"},{"preset":"audio"}]}`, 201)
		b, _ := json.Marshal(c["renditions"])
		want := `[{"audio_bitrate_kbps":128,"height":1080,"kind":"video","name":"1080p","preset":"1080p","video_bitrate_kbps":5000,"width":1920},` +
			`{"audio_bitrate_kbps":96,"height":480,"kind":"video","name":"sd","preset":"480p","video_bitrate_kbps":1000,"width":854},` +
			`{"audio_bitrate_kbps":0,"height":0,"kind":"copy","name":"src","preset":"copy","video_bitrate_kbps":0,"width":0},` +
			`{"audio_bitrate_kbps":128,"height":0,"kind":"audio","name":"audio","preset":"audio","video_bitrate_kbps":0,"width":0}]`
		if string(b) != want || c["segment_seconds"] != float64(2) {
			t.Fatalf("stored ladder %s (segment %v)\nwant %s", b, c["segment_seconds"], want)
		}
	})
}
