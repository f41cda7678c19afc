package compile

import (
	"encoding/json"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portier/portier/internal/redact"
	"github.com/portier/portier/internal/taskcost"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	testStream = StreamState{ID: 7, App: "live", Name: "show", Key: "k3y-abc"}
	testEnv    = Env{
		RelayRTMPURL: "rtmp://127.0.0.1:1935",
		RecordDir:    "/var/lib/portier/rec",
		HLSOriginURL: "http://127.0.0.1:8090/",
	}
	ladder = []Rendition{
		{Name: "720p", Width: 1280, Height: 720, VideoBitrate: 3000, AudioBitrate: 128},
		{Name: "360p", Width: 640, Height: 360, VideoBitrate: 800},
	}
)

func TestCompileGolden(t *testing.T) {
	videoOnly := testStream
	videoOnly.Tracks = Tracks{Known: true, Video: true}
	cases := []struct {
		name string
		cfg  TaskConfigInput
		st   *StreamState // default testStream
	}{
		{"restream_rtmp_key", TaskConfigInput{Type: TypeRestream, Target: "rtmp://a.rtmp.youtube.com/live2", Key: "abcd-efgh-ijkl"}, nil},
		{"restream_rtmp_nokey", TaskConfigInput{Type: TypeRestream, Target: "rtmps://live.example.com:443/app/streamkey"}, nil},
		{"restream_srt", TaskConfigInput{Type: TypeRestream, Target: "srt://ingest.example.com:9000?latency=200000", Key: "sk"}, nil},
		{"record", TaskConfigInput{Type: TypeRecord, SegmentSeconds: 300}, nil},
		{"record_default", TaskConfigInput{Type: TypeRecord}, nil},
		{"record_mp4", TaskConfigInput{Type: TypeRecord, Format: "mp4", SegmentSeconds: 10}, nil},
		{"pull_hls", TaskConfigInput{Type: TypePull, Source: "https://cdn.example.com/live/index.m3u8"}, nil},
		{"pull_rtsp", TaskConfigInput{Type: TypePull, Source: "rtsp://cam.local:554/stream1"}, nil},
		{"pull_rtmp", TaskConfigInput{Type: TypePull, Source: "rtmp://other.example.com/live/x"}, nil},
		{"hls_ladder", TaskConfigInput{Type: TypeHLS, Renditions: ladder}, nil},
		{"hls_fps_seg4", TaskConfigInput{Type: TypeHLS, SegmentSeconds: 4, Renditions: []Rendition{
			{Name: "720p30", Width: 1280, Height: 720, FPS: 30, VideoBitrate: 3000}, {Name: "360p15", Width: 640, Height: 360, FPS: 15, VideoBitrate: 500, AudioBitrate: 64}}}, nil},
		{"hls_copy", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Name: "source", Kind: KindCopy}, ladder[1]}}, nil},
		{"hls_copy_only", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Preset: "copy"}}}, nil},
		{"hls_audio", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{ladder[0], {Name: "radio", Kind: KindAudio, AudioBitrate: 64}}}, nil},
		{"hls_audio_only", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Preset: "audio"}}}, nil},
		{"hls_presets", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Preset: "1080p"}, {Preset: "720p"}, {Preset: "480p", Name: "sd", VideoBitrate: 1000}, {Preset: "copy", Name: "src"}, {Preset: "audio"}}}, nil},
		{"hls_video_only", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{ladder[1], {Preset: "copy", Name: "src"}, {Preset: "audio"}}}, &videoOnly},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := testStream
			if tc.st != nil {
				st = *tc.st
			}
			d, err := Compile(tc.cfg, st, testEnv)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, _ := json.MarshalIndent(d, "", "  ")
			got = append(got, '\n')
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("description differs from %s:\n got: %s\nwant: %s", path, got, want)
			}
			if d.Version != d.Hash() || d.Version == "" {
				t.Errorf("version %q does not match hash %q", d.Version, d.Hash())
			}
			if tc.cfg.Type == TypeHLS && (d.CredentialArg <= 0 || !strings.Contains(d.Args[d.CredentialArg], CredentialPlaceholder)) {
				t.Errorf("credential argument %d does not hold the placeholder", d.CredentialArg)
			}
			if d.Command != "ffmpeg" || d.Cost < 1 || len(d.Outputs) == 0 || d.Input == "" {
				t.Errorf("incomplete description: %+v", d)
			}
		})
	}
}

func TestCompileCosts(t *testing.T) {
	d, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: ladder}, testStream, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	// 1280x720 is four times 640x360 (one core each), 640x360 one core.
	if d.Cost != 5*taskcost.PerCore {
		t.Errorf("hls cost = %d, want %d", d.Cost, 5*taskcost.PerCore)
	}
	// Cost is encoding work: pixels × frame rate (30 fps when the source's
	// is kept), rounded up to a hundredth of a core; copy and audio-only
	// renditions add nothing, and a ladder costs at least a copy.
	for _, tc := range []struct {
		rs   []Rendition
		want int
	}{
		{[]Rendition{{Name: "a", Width: 1280, Height: 720, FPS: 60, VideoBitrate: 3000}}, 800},
		{[]Rendition{{Name: "a", Width: 640, Height: 360, FPS: 15, VideoBitrate: 500}, {Name: "b", Width: 640, Height: 360, FPS: 15, VideoBitrate: 500}}, 100},
		{[]Rendition{{Name: "a", Width: 480, Height: 270, VideoBitrate: 400}}, 57},   // 0.5625 core
		{[]Rendition{{Name: "a", Width: 854, Height: 480, VideoBitrate: 1400}}, 178}, // 1.779 cores
		{[]Rendition{{Preset: "1080p"}, {Preset: "copy"}, {Preset: "audio"}}, 900},
		{[]Rendition{{Preset: "copy"}}, taskcost.Copy},
		{[]Rendition{{Preset: "audio"}}, taskcost.Copy},
		{[]Rendition{{Preset: "copy"}, {Preset: "audio"}, {Preset: "360p"}}, 100},
	} {
		d, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: tc.rs}, testStream, testEnv)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cost != tc.want {
			t.Errorf("cost of %+v = %d, want %d", tc.rs, d.Cost, tc.want)
		}
	}
	// Copying tasks cost a fraction of an encode.
	for _, typ := range []TaskConfigInput{
		{Type: TypeRestream, Target: "rtmp://x.example.com/app"},
		{Type: TypeRecord},
		{Type: TypePull, Source: "srt://x.example.com:9000"},
	} {
		d, err := Compile(typ, testStream, testEnv)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cost != taskcost.Copy || d.Cost*10 > taskcost.Encode {
			t.Errorf("%s cost = %d, want %d (at most a tenth of an encode's %d)", typ.Type, d.Cost, taskcost.Copy, taskcost.Encode)
		}
	}
}

func TestCompileInvalid(t *testing.T) {
	cases := []struct {
		name string
		cfg  TaskConfigInput
		st   StreamState
		env  Env
		want string
	}{
		{"unknown type", TaskConfigInput{Type: "exec"}, testStream, testEnv, "unknown type"},
		{"http target", TaskConfigInput{Type: TypeRestream, Target: "http://x.example.com/a"}, testStream, testEnv, "scheme"},
		{"file target", TaskConfigInput{Type: TypeRestream, Target: "file:///etc/passwd"}, testStream, testEnv, "scheme"},
		{"no host", TaskConfigInput{Type: TypeRestream, Target: "rtmp:///live"}, testStream, testEnv, "no host"},
		{"newline in target", TaskConfigInput{Type: TypeRestream, Target: "rtmp://x.example.com/a\n-y"}, testStream, testEnv, "control"},
		{"space in key", TaskConfigInput{Type: TypeRestream, Target: "rtmp://x.example.com/a", Key: "a b"}, testStream, testEnv, "key contains"},
		{"control in key", TaskConfigInput{Type: TypeRestream, Target: "rtmp://x.example.com/a", Key: "a\x00"}, testStream, testEnv, "key contains"},
		{"flv over srt", TaskConfigInput{Type: TypeRestream, Target: "srt://x.example.com:1", Format: "flv"}, testStream, testEnv, "mpegts"},
		{"bad format", TaskConfigInput{Type: TypeRestream, Target: "rtmp://x.example.com/a", Format: "mp4"}, testStream, testEnv, "format"},
		{"pull http not hls", TaskConfigInput{Type: TypePull, Source: "http://x.example.com/a.mp4"}, testStream, testEnv, "HLS playlist"},
		{"record format", TaskConfigInput{Type: TypeRecord, Format: "avi"}, testStream, testEnv, "record format"},
		{"pull file", TaskConfigInput{Type: TypePull, Source: "file:///dev/zero"}, testStream, testEnv, "scheme"},
		{"pull without key", TaskConfigInput{Type: TypePull, Source: "rtsp://cam/x"}, StreamState{App: "live", Name: "s"}, testEnv, "publish key"},
		{"relative record dir", TaskConfigInput{Type: TypeRecord}, testStream, Env{RelayRTMPURL: "rtmp://r", RecordDir: "rec"}, "absolute"},
		{"record segment", TaskConfigInput{Type: TypeRecord, SegmentSeconds: -1}, testStream, testEnv, "segment_seconds"},
		{"empty ladder", TaskConfigInput{Type: TypeHLS}, testStream, testEnv, "renditions"},
		{"hls without stream id", TaskConfigInput{Type: TypeHLS, Renditions: ladder}, StreamState{App: "live", Name: "s"}, testEnv, "stream's id"},
		{"odd size", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Name: "a", Width: 641, Height: 360, VideoBitrate: 500}}}, testStream, testEnv, "even number"},
		{"dup rendition", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{ladder[0], ladder[0]}}, testStream, testEnv, "twice"},
		{"rendition name", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Name: "a b", Width: 640, Height: 360, VideoBitrate: 500}}}, testStream, testEnv, "name"},
		{"no hls origin", TaskConfigInput{Type: TypeHLS, Renditions: ladder}, testStream, Env{RelayRTMPURL: "rtmp://r"}, "HLS origin"},
		{"traversal stream", TaskConfigInput{Type: TypeRecord}, StreamState{App: "live", Name: "a..b"}, testEnv, "stream name"},
		{"slash stream", TaskConfigInput{Type: TypeRecord}, StreamState{App: "live", Name: "a/b"}, testEnv, "stream name"},
		{"no relay", TaskConfigInput{Type: TypeRecord}, testStream, Env{RecordDir: "/x"}, "relay URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.cfg, tc.st, tc.env)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNeedsReplace(t *testing.T) {
	base := TaskConfigInput{ID: 1, Type: TypeRestream, Name: "youtube", Target: "rtmp://a.example.com/live2", Key: "k1"}
	old, err := Compile(base, testStream, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	renamed := base
	renamed.Name = "YouTube main"
	d, _ := Compile(renamed, testStream, testEnv)
	if NeedsReplace(old, d) {
		t.Error("a rename must not replace the running task")
	}
	rekeyed := base
	rekeyed.Key = "k2"
	d, _ = Compile(rekeyed, testStream, testEnv)
	if !NeedsReplace(old, d) {
		t.Error("a new key must replace the running task")
	}
	moved := base
	moved.Target = "rtmp://b.example.com/live2"
	d, _ = Compile(moved, testStream, testEnv)
	if !NeedsReplace(old, d) {
		t.Error("a new target must replace the running task")
	}
	// The same config against a different stream name is a different command.
	st := testStream
	st.Name = "other"
	d, _ = Compile(base, st, testEnv)
	if !NeedsReplace(old, d) {
		t.Error("a different input must replace the running task")
	}
	// Required labels move the task: a label edit replaces it, and the
	// labels reach the description (the scheduler reads them from there).
	labelled := base
	labelled.Labels = map[string]string{"region": "eu"}
	d, _ = Compile(labelled, testStream, testEnv)
	if !NeedsReplace(old, d) || d.Labels["region"] != "eu" {
		t.Errorf("labels: replace %v, description labels %v", NeedsReplace(old, d), d.Labels)
	}
	if _, err := Compile(TaskConfigInput{Type: TypeRestream, Target: "rtmp://a.example.com/x", Labels: map[string]string{"a": "b\n"}}, testStream, testEnv); !errors.Is(err, ErrInvalid) {
		t.Errorf("a label with a control character: %v", err)
	}
	// Round trip through JSON (how descriptions are stored) keeps the hash.
	b, _ := json.Marshal(old)
	var back Description
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if NeedsReplace(old, back) || back.Hash() != old.Version {
		t.Error("hash changed through a JSON round trip")
	}
}

// TestSecretsRedactable: every secret the compiler puts on a command line
// (restream keys, keys in a target's path, srt stream ids, the stream key a
// pull publishes with, HLS tokens) is one redact.TaskSecrets finds there,
// so the concierge and the control plane mask it in task logs.
func TestSecretsRedactable(t *testing.T) {
	for _, tc := range []struct {
		cfg     TaskConfigInput
		secrets []string
	}{
		{TaskConfigInput{Type: TypeRestream, Target: "rtmp://a.rtmp.youtube.com/live2", Key: "abcd-efgh-ijkl"}, []string{"abcd-efgh-ijkl"}},
		{TaskConfigInput{Type: TypeRestream, Target: "rtmps://live.example.com:443/app/streamkey"}, []string{"streamkey"}},
		{TaskConfigInput{Type: TypeRestream, Target: "srt://ingest.example.com:9000?latency=200000", Key: "sk-123"}, []string{"sk-123"}},
		{TaskConfigInput{Type: TypeRestream, Target: "rtmp://user:pw@h/app", Key: "k"}, []string{"pw"}},
		{TaskConfigInput{Type: TypePull, Source: "rtsp://admin:hunter2@cam.local:554/stream1"}, []string{"hunter2", testStream.Key}},
	} {
		d, err := Compile(tc.cfg, testStream, testEnv)
		if err != nil {
			t.Fatalf("%+v: %v", tc.cfg, err)
		}
		found := redact.TaskSecrets(d.Type, d.Args)
		for _, s := range tc.secrets {
			if !slices.Contains(found, s) {
				t.Errorf("%s %q: secret %q not found on the command line (found %q)", tc.cfg.Type, tc.cfg.Target+tc.cfg.Source, s, found)
			}
		}
	}
}

// TestCompileURLPolicy: Env.CheckURL vets pull sources and restream targets.
func TestCompileURLPolicy(t *testing.T) {
	env := testEnv
	var seen []string
	env.CheckURL = func(field string, u *url.URL) error {
		seen = append(seen, field+"="+u.Host)
		if u.Hostname() == "169.254.169.254" {
			return errors.New(field + " is link-local")
		}
		return nil
	}
	for _, tc := range []struct {
		cfg TaskConfigInput
		bad bool
	}{
		{TaskConfigInput{Type: TypePull, Source: "rtsp://169.254.169.254/x"}, true},
		{TaskConfigInput{Type: TypeRestream, Target: "rtmp://169.254.169.254/live"}, true},
		{TaskConfigInput{Type: TypePull, Source: "rtsp://10.0.0.1/x"}, false},
		{TaskConfigInput{Type: TypeRestream, Target: "rtmp://10.0.0.1/live"}, false},
	} {
		_, err := Compile(tc.cfg, testStream, env)
		if tc.bad != (err != nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%+v: %v", tc.cfg, err)
		}
	}
	if len(seen) != 4 {
		t.Errorf("CheckURL calls: %v", seen)
	}
}

// TestCheckLadderRefuses: the ladders the compiler refuses, each with the
// field the API names (models and the UI report the same field).
func TestCheckLadderRefuses(t *testing.T) {
	v := func(name string) Rendition { return Rendition{Name: name, Width: 640, Height: 360, VideoBitrate: 800} }
	nine := make([]Rendition, 9)
	for i := range nine {
		nine[i] = v("r" + string(rune('a'+i)))
	}
	for _, tc := range []struct {
		name  string
		rs    []Rendition
		seg   int
		field string
	}{
		{"empty", nil, 0, "renditions"},
		{"too many", nine, 0, "renditions"},
		{"segment too long", []Rendition{v("a")}, 31, "segment_seconds"},
		{"segment negative", []Rendition{v("a")}, -1, "segment_seconds"},
		{"odd width", []Rendition{{Name: "a", Width: 641, Height: 360, VideoBitrate: 800}}, 0, "renditions[0].width"},
		{"no size", []Rendition{{Name: "a", VideoBitrate: 800}}, 0, "renditions[0].width"},
		{"odd height", []Rendition{v("a"), {Name: "b", Width: 640, Height: 361, VideoBitrate: 800}}, 0, "renditions[1].height"},
		{"no bitrate", []Rendition{{Name: "a", Width: 640, Height: 360}}, 0, "renditions[0].video_bitrate_kbps"},
		{"fps", []Rendition{{Name: "a", Width: 640, Height: 360, FPS: 240, VideoBitrate: 800}}, 0, "renditions[0].fps"},
		{"audio bitrate", []Rendition{{Name: "a", Width: 640, Height: 360, VideoBitrate: 800, AudioBitrate: 1000}}, 0, "renditions[0].audio_bitrate_kbps"},
		{"bad name", []Rendition{{Name: "-a", Width: 640, Height: 360, VideoBitrate: 800}}, 0, "renditions[0].name"},
		{"no name", []Rendition{{Width: 640, Height: 360, VideoBitrate: 800}}, 0, "renditions[0].name"},
		{"dup name", []Rendition{v("a"), v("a")}, 0, "renditions[1].name"},
		{"dup preset", []Rendition{{Preset: "720p"}, {Preset: "720p"}}, 0, "renditions[1].name"},
		{"unknown preset", []Rendition{{Preset: "4k"}}, 0, "renditions[0].preset"},
		{"preset kind", []Rendition{{Preset: "audio", Kind: KindVideo}}, 0, "renditions[0].kind"},
		{"unknown kind", []Rendition{{Name: "a", Kind: "subtitles"}}, 0, "renditions[0].kind"},
		{"copy with size", []Rendition{{Name: "a", Kind: KindCopy, Width: 640, Height: 360}}, 0, "renditions[0].width"},
		{"copy with bitrate", []Rendition{{Name: "a", Kind: KindCopy, VideoBitrate: 800}}, 0, "renditions[0].video_bitrate_kbps"},
		{"copy with audio bitrate", []Rendition{{Name: "a", Kind: KindCopy, AudioBitrate: 96}}, 0, "renditions[0].audio_bitrate_kbps"},
		{"audio with size", []Rendition{{Name: "a", Kind: KindAudio, Height: 360}}, 0, "renditions[0].height"},
		{"audio with fps", []Rendition{{Name: "a", Kind: KindAudio, FPS: 30}}, 0, "renditions[0].fps"},
		{"two copies", []Rendition{{Preset: "copy"}, {Name: "b", Kind: KindCopy}}, 0, "renditions[1].kind"},
		{"two audio", []Rendition{{Preset: "audio"}, {Name: "b", Kind: KindAudio}}, 0, "renditions[1].kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := CheckLadder(tc.rs, tc.seg)
			var re *RuleError
			if !errors.As(err, &re) || re.Field != tc.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckLadder: %v (%#v), want a rule error for %s", err, re, tc.field)
			}
			if _, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: tc.rs, SegmentSeconds: tc.seg}, testStream, testEnv); !errors.Is(err, ErrInvalid) {
				t.Errorf("Compile accepted what CheckLadder refuses: %v", err)
			}
		})
	}
	rs, seg, err := CheckLadder([]Rendition{{Preset: "480p", VideoBitrate: 1000}, {Preset: "audio", Name: "radio"}}, 0)
	if err != nil || seg != DefaultSegmentSeconds {
		t.Fatal(err, seg)
	}
	want := []Rendition{{Name: "480p", Preset: "480p", Kind: KindVideo, Width: 854, Height: 480, VideoBitrate: 1000, AudioBitrate: 96},
		{Name: "radio", Preset: "audio", Kind: KindAudio, AudioBitrate: 128}}
	if !slices.Equal(rs, want) {
		t.Errorf("expanded ladder %+v, want %+v", rs, want)
	}
}
