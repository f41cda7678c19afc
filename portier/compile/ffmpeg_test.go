package compile

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sampleFile makes a short H.264+AAC FLV file with ffmpeg's test sources.
func sampleFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.flv")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make sample: %v\n%s", err, out)
	}
	return path
}

// runWithInput runs the compiled command with its -i replaced by a local
// file (the relay is another package's concern): it proves the argument
// list is one ffmpeg 5.1 accepts and produces the promised outputs.
func runWithInput(t *testing.T, d Description, input string) {
	t.Helper()
	args := slices.Clone(d.Args)
	i := slices.Index(args, "-i")
	args[i+1] = input
	// The file is not a network input: drop the network timeout option.
	if j := slices.Index(args, "-rw_timeout"); j >= 0 {
		args = slices.Delete(args, j, j+2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.Command, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

func TestFFmpegRunsHLS(t *testing.T) {
	var (
		mu    sync.Mutex
		puts  = map[string]int{}
		noTok int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer hls1.test-credential" {
			noTok++
		}
		if r.Method == http.MethodPut {
			puts[r.URL.Path]++
		}
	}))
	defer srv.Close()
	env := testEnv
	env.HLSOriginURL = srv.URL
	// A ladder with every kind of rendition.
	rs := append(slices.Clone(ladder), Rendition{Preset: "copy", Name: "src"}, Rendition{Preset: "audio"})
	d, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: rs}, testStream, env)
	if err != nil {
		t.Fatal(err)
	}
	// What the concierge does with the assignment's credential.
	d.Args[d.CredentialArg] = strings.Replace(d.Args[d.CredentialArg], CredentialPlaceholder, "hls1.test-credential", 1)
	runWithInput(t, d, sampleFile(t))
	mu.Lock()
	defer mu.Unlock()
	segs := map[string]int{}
	for p := range puts {
		dir, file := filepath.Split(p)
		if strings.HasSuffix(file, ".ts") {
			segs[dir]++
		}
	}
	for _, p := range []string{"/hls/s/7/master.m3u8", "/hls/s/7/720p/index.m3u8", "/hls/s/7/360p/index.m3u8", "/hls/s/7/src/index.m3u8", "/hls/s/7/audio/index.m3u8"} {
		if puts[p] == 0 {
			t.Errorf("no PUT of %s (got %v)", p, puts)
		}
	}
	for _, r := range []string{"720p", "360p", "src", "audio"} {
		if segs["/hls/s/7/"+r+"/"] < 2 {
			t.Errorf("rendition %s: %d segments PUT (got %v)", r, segs["/hls/s/7/"+r+"/"], puts)
		}
	}
	if noTok != 0 {
		t.Errorf("%d requests without the task's token", noTok)
	}
}

func TestFFmpegRunsRecord(t *testing.T) {
	env := testEnv
	env.RecordDir = t.TempDir()
	d, err := Compile(TaskConfigInput{Type: TypeRecord, SegmentSeconds: 2}, testStream, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range d.Dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runWithInput(t, d, sampleFile(t))
	files, _ := filepath.Glob(filepath.Join(RecordingDir(env.RecordDir, testStream.ID), "*.ts"))
	if len(files) < 1 {
		t.Fatalf("no recorded segments in %s", env.RecordDir)
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".ts") || strings.Contains(filepath.Base(f), "%") {
			t.Errorf("segment name not expanded: %s", f)
		}
	}
}

// trackFile makes a short FLV file with ffmpeg's test sources holding only
// the tracks asked for.
func trackFile(t *testing.T, video, audio bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.flv")
	var args []string
	if video {
		args = append(args, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25")
	}
	if audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")
	}
	args = append(args, "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", path)
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make sample: %v\n%s", err, out)
	}
	return path
}

// TestFFmpegRunsHLSForTracks: the compiled HLS command, run by real ffmpeg
// on a source with only video or only audio, succeeds once the stream's
// tracks are known, and writes every rendition those tracks can feed (the
// audio rendition is left out for a video-only source, the video ones for
// an audio-only source). With the tracks unknown (what the compiler
// assumed before: audio always) ffmpeg refuses a video-only source.
func TestFFmpegRunsHLSForTracks(t *testing.T) {
	rs := []Rendition{ladder[1], {Preset: "copy", Name: "src"}, {Preset: "audio"}}
	for _, tc := range []struct {
		name         string
		video, audio bool
		want, absent []string
	}{
		{"video only", true, false, []string{"360p", "src"}, []string{"audio"}},
		{"audio only", false, true, []string{"audio"}, []string{"360p", "src"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			puts := map[string]int{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				mu.Lock()
				defer mu.Unlock()
				if r.Method == http.MethodPut {
					dir, file := filepath.Split(r.URL.Path)
					if strings.HasSuffix(file, ".ts") {
						puts[filepath.Base(dir)]++
					}
				}
			}))
			defer srv.Close()
			env := testEnv
			env.HLSOriginURL = srv.URL
			st := testStream
			st.Tracks = Tracks{Known: true, Video: tc.video, Audio: tc.audio}
			d, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: rs}, st, env)
			if err != nil {
				t.Fatal(err)
			}
			in := trackFile(t, tc.video, tc.audio)
			runWithInput(t, d, in)
			mu.Lock()
			defer mu.Unlock()
			for _, r := range tc.want {
				if puts[r] < 2 {
					t.Errorf("rendition %s: %d segments PUT (got %v)", r, puts[r], puts)
				}
			}
			for _, r := range tc.absent {
				if puts[r] != 0 {
					t.Errorf("rendition %s written for a source without its track: %v", r, puts)
				}
			}
			{
				// The tracks unknown: the whole ladder, audio mapped.
				d, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: rs}, testStream, env)
				if err != nil {
					t.Fatal(err)
				}
				args := slices.Clone(d.Args)
				args[slices.Index(args, "-i")+1] = in
				j := slices.Index(args, "-rw_timeout")
				args = slices.Delete(args, j, j+2)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if out, err := exec.CommandContext(ctx, d.Command, args...).CombinedOutput(); err == nil {
					t.Errorf("with unknown tracks, ffmpeg accepted a source with only video=%v audio=%v:\n%s", tc.video, tc.audio, out)
				}
			}
		})
	}
	// Nothing to feed: refused by the compiler, naming why.
	st := testStream
	st.Tracks = Tracks{Known: true, Audio: true}
	if _, err := Compile(TaskConfigInput{Type: TypeHLS, Renditions: []Rendition{ladder[1]}}, st, testEnv); err == nil || !strings.Contains(err.Error(), "no video track") {
		t.Errorf("video ladder on an audio-only stream: %v", err)
	}
}
