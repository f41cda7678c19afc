package compile

import (
	"errors"
	"strings"
	"testing"

	"github.com/portier/portier/internal/taskcost"
)

func TestCheckTargetKey(t *testing.T) {
	for _, c := range []struct {
		target, key string
		want        string // "" accepted, else a substring of the message
	}{
		{"rtmp://a.rtmp.youtube.com/live2", "abcd-efgh-ijkl-mnop-qrst", ""},
		{"rtmp://a.rtmp.youtube.com/live2", "abcd-efgh-ijkl", "xxxx-xxxx-xxxx-xxxx-xxxx"},
		{"rtmp://a.rtmp.youtube.com/live2", " abcd-efgh-ijkl-mnop-qrst", "xxxx-xxxx-xxxx-xxxx-xxxx"},
		{"rtmp://a.rtmp.youtube.com/live2", "", "needs its stream key"},
		{"rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop-qrst", "", ""},
		{"rtmps://a.rtmps.youtube.com:443/live2", "abcd-efgh-ijkl-mnop-qrst", ""},
		{"rtmp://live.twitch.tv/app", "live_123456789_AbCdEfGh012", ""},
		{"rtmp://live.twitch.tv/app", "live_123456789_AbCdEfGh012?bandwidthtest=true", ""},
		{"rtmp://live.twitch.tv/app", "123456789_AbCd", "live_…"},
		{"rtmp://jfk.contribute.live-video.net/app", "sk_us-west-2_x", "live_…"},
		{"rtmps://live-api-s.facebook.com:443/rtmp/", "FB-1234567890123-0-AbCdEfGh", ""},
		{"rtmps://live-api-s.facebook.com:443/rtmp/", "1234567890?s_bl=1&s_psm=1&a=AbC", ""},
		{"rtmps://live-api-s.facebook.com:443/rtmp/", "live_1_a", "FB-…"},
		{"rtmps://fa723fc1b171.global-contribute.live-video.net/app", "sk_us-west-2_87WSgfz1_tJI9", ""},
		{"rtmps://fa723fc1b171.global-contribute.live-video.net/app", "live_1_a", "sk_…"},
		{"rtmp://live.restream.io/live", "re_123_abc", ""},
		{"rtmp://live.restream.io/live", "", ""},
		{"rtmp://relay.example/live", "anything-at-all", ""},
		{"rtmp://relay.example/live", "rtmp://relay.example/live/k", "is a URL"},
		{"srt://relay.example:9000", "", ""},
	} {
		err := CheckTargetKey(c.target, c.key)
		if c.want == "" {
			if err != nil {
				t.Errorf("CheckTargetKey(%q, %q) = %v, want nil", c.target, c.key, err)
			}
			continue
		}
		var re *RuleError
		if !errors.As(err, &re) || re.Field != "key" || !strings.Contains(re.Message, c.want) {
			t.Errorf("CheckTargetKey(%q, %q) = %v, want a key error naming %q", c.target, c.key, err, c.want)
		}
	}
}

// TestPresetsValid: every preset target is a URL the compiler accepts with
// a key of its own shape, and every ladder passes CheckLadder.
func TestPresetsValid(t *testing.T) {
	keys := map[string]string{"xxxx-xxxx-xxxx-xxxx-xxxx": "abcd-efgh-ijkl-mnop-qrst", "live_…": "live_1_a", "FB-…": "FB-1-0-a", "sk_…": "sk_us-west-2_a", "": "k"}
	for _, p := range RestreamPresets {
		key := keys[p.KeyShape]
		if err := CheckTargetKey(p.Target, key); err != nil {
			t.Errorf("%s: example key %q refused: %v", p.ID, key, err)
		}
		if got, ok := RestreamPresetForTarget(p.Target); !ok || got.Target != p.Target {
			t.Errorf("%s: its target finds preset %q", p.ID, got.ID)
		}
		d, err := Compile(TaskConfigInput{Type: TypeRestream, Target: p.Target, Key: key}, testStream, testEnv)
		if err != nil {
			t.Errorf("%s: compile: %v", p.ID, err)
			continue
		}
		if out := d.Args[len(d.Args)-1]; !strings.HasSuffix(out, "/"+key) || strings.Contains(out, "//"+key) {
			t.Errorf("%s: output %q, want the target with /KEY", p.ID, out)
		}
	}
	ids := map[string]bool{}
	for _, l := range LadderPresets {
		ids[l.ID] = true
		rs, _, err := CheckLadder(l.Renditions, 0)
		if err != nil {
			t.Errorf("ladder %s: %v", l.ID, err)
		}
		if l.Cost != taskcost.Cores(HLSCost(rs)) || l.Cost <= 0 {
			t.Errorf("ladder %s: cost %v cores, want %v", l.ID, l.Cost, taskcost.Cores(HLSCost(rs)))
		}
	}
	for _, id := range []string{"1080p", "720p", "480p", "audio", "copy"} {
		if !ids[id] {
			t.Errorf("no ladder preset %s", id)
		}
	}
	if l, _ := LadderPresetByID("480p"); len(l.Renditions) != 2 || l.Renditions[0].Width != 854 || l.Renditions[1].VideoBitrate != 800 {
		t.Errorf("480p ladder %+v", l)
	}
}
