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
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	testStream = StreamState{ID: 7, App: "live", Name: "show", Key: "k3y-abc"}
	testEnv    = Env{
		RelayRTMPURL: "rtmp://127.0.0.1:1935",
		RecordDir:    "/var/lib/portier/rec",
		HLSOriginURL: "http://127.0.0.1:8090/",
		HLSToken:     func(prefix string) string { return "tok-" + strings.ReplaceAll(prefix, "/", "-") },
	}
	ladder = []Rendition{
		{Name: "720p", Width: 1280, Height: 720, VideoBitrate: 3000, AudioBitrate: 128},
		{Name: "360p", Width: 640, Height: 360, VideoBitrate: 800},
	}
)

func TestCompileGolden(t *testing.T) {
	cases := []struct {
		name string
		cfg  TaskConfigInput
	}{
		{"restream_rtmp_key", TaskConfigInput{Type: TypeRestream, Target: "rtmp://a.rtmp.youtube.com/live2", Key: "abcd-efgh-ijkl"}},
		{"restream_rtmp_nokey", TaskConfigInput{Type: TypeRestream, Target: "rtmps://live.example.com:443/app/streamkey"}},
		{"restream_srt", TaskConfigInput{Type: TypeRestream, Target: "srt://ingest.example.com:9000?latency=200000", Key: "sk"}},
		{"record", TaskConfigInput{Type: TypeRecord, SegmentSeconds: 300}},
		{"record_default", TaskConfigInput{Type: TypeRecord}},
		{"record_mp4", TaskConfigInput{Type: TypeRecord, Format: "mp4", SegmentSeconds: 10}},
		{"pull_hls", TaskConfigInput{Type: TypePull, Source: "https://cdn.example.com/live/index.m3u8"}},
		{"pull_rtsp", TaskConfigInput{Type: TypePull, Source: "rtsp://cam.local:554/stream1"}},
		{"pull_rtmp", TaskConfigInput{Type: TypePull, Source: "rtmp://other.example.com/live/x"}},
		{"hls_ladder", TaskConfigInput{Type: TypeHLS, Renditions: ladder}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Compile(tc.cfg, testStream, testEnv)
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
	// 1280x720 = 4 units of 640x360, 640x360 = 1 unit.
	if d.Cost != 5 {
		t.Errorf("hls cost = %d, want 5", d.Cost)
	}
	for _, typ := range []TaskConfigInput{
		{Type: TypeRestream, Target: "rtmp://x.example.com/app"},
		{Type: TypeRecord},
		{Type: TypePull, Source: "srt://x.example.com:9000"},
	} {
		d, err := Compile(typ, testStream, testEnv)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cost != 1 {
			t.Errorf("%s cost = %d, want 1", typ.Type, d.Cost)
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
		{"odd size", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Name: "a", Width: 641, Height: 360, VideoBitrate: 500}}}, testStream, testEnv, "even number"},
		{"dup rendition", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{ladder[0], ladder[0]}}, testStream, testEnv, "twice"},
		{"rendition name", TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{{Name: "a b", Width: 640, Height: 360, VideoBitrate: 500}}}, testStream, testEnv, "name"},
		{"no hls origin", TaskConfigInput{Type: TypeHLS, Renditions: ladder}, testStream, Env{RelayRTMPURL: "rtmp://r"}, "HLS origin"},
		{"traversal stream", TaskConfigInput{Type: TypeRecord}, StreamState{App: "live", Name: "a..b"}, testEnv, "stream name"},
		{"slash stream", TaskConfigInput{Type: TypeRecord}, StreamState{App: "live", Name: "a/b"}, testEnv, "stream name"},
		{"no relay", TaskConfigInput{Type: TypeRecord}, testStream, Env{RecordDir: "/x"}, "relay URL"},
		{"token with newline", TaskConfigInput{Type: TypeHLS, Renditions: ladder}, testStream,
			Env{RelayRTMPURL: "rtmp://r", HLSOriginURL: "http://o", HLSToken: func(string) string { return "a\r\nX-Evil: 1" }}, "HLS token"},
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
		{TaskConfigInput{Type: TypeHLS, Renditions: ladder}, []string{"tok-live-show"}},
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
