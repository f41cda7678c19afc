package portier

import (
	"slices"
	"strings"
	"testing"

	"github.com/portier/portier/models"
)

// TestHLSTaskFollowsReportedTracks: an HLS task compiled when the stream
// went live (tracks unknown) maps audio; once the origin reports a
// video-only stream it is replaced by one that maps video only and leaves
// the audio rendition out, while a restream task (which compiles the same)
// keeps running. The same report again changes nothing; a report with
// audio brings the audio back.
func TestHLSTaskFollowsReportedTracks(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		e.register(t, "origin-1", "origin")
		yt := e.addConfig(t, models.TypeRestream, "yt", `{"target":"rtmp://a.example.com/live2","key":"k1"}`, true)
		hls := e.addConfig(t, models.TypeHLS, "hls", `{"renditions":[{"name":"360p","width":640,"height":360,"video_bitrate_kbps":800},{"preset":"audio"}]}`, true)
		e.publish(t, "origin-1")
		mapsAudio := func(tk models.Task) bool { return slices.Contains(tk.Description.Args, "0:a:0") }
		varMap := func(tk models.Task) string {
			i := slices.Index(tk.Description.Args, "-var_stream_map")
			return tk.Description.Args[i+1]
		}
		run := e.running(t)
		first, ytTask := run[hls.ID], run[yt.ID]
		if first.ID == 0 || !mapsAudio(first) {
			t.Fatalf("hls task at live: %+v", first.Description.Args)
		}
		videoOnly := streamReport("live/show", true, 0, 1_000_000)
		delete(videoOnly, "audio_codec")
		delete(videoOnly, "sample_rate")
		delete(videoOnly, "channels")
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, videoOnly)
		run = e.running(t)
		second := run[hls.ID]
		if second.ID == first.ID || mapsAudio(second) || varMap(second) != "v:0,name:360p" {
			t.Fatalf("hls task after a video-only report: task %d (was %d), var_stream_map %q, args %v",
				second.ID, first.ID, varMap(second), second.Description.Args)
		}
		if run[yt.ID].ID != ytTask.ID {
			t.Fatalf("the restream task was replaced (%d, was %d)", run[yt.ID].ID, ytTask.ID)
		}
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, videoOnly)
		if run = e.running(t); run[hls.ID].ID != second.ID {
			t.Fatalf("the same report replaced the hls task again")
		}
		e.statsHeartbeat(t, "origin-1", []string{"live/show"}, streamReport("live/show", true, 0, 1_000_000))
		third := e.running(t)[hls.ID]
		if third.ID == second.ID || !mapsAudio(third) || !strings.Contains(varMap(third), "name:audio") {
			t.Fatalf("hls task after audio appeared: task %d, var_stream_map %q", third.ID, varMap(third))
		}
	})
}
