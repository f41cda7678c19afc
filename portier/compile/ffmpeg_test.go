package compile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// TestFFmpegRestreamRTMPS runs a restream compiled for an rtmps:// target
// of a platform's shape (app path, key appended) with real ffmpeg: it
// pushes over TLS to a local terminator in front of an ffmpeg RTMP
// listener, which receives the video. It proves the compiled URL is one
// ffmpeg's tls protocol takes (Facebook and Kick accept RTMPS only).
func TestFFmpegRestreamRTMPS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	ln.Close() // ffmpeg listens there itself
	out := filepath.Join(t.TempDir(), "received.flv")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recv := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-rtmp_listen", "1", "-timeout", "30", "-i", "rtmp://"+backend+"/rtmp/FB-1234-0-AbC", "-c", "copy", "-f", "flv", out)
	var recvLog strings.Builder
	recv.Stderr = &recvLog
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	recvDone := make(chan error, 1)
	go func() { recvDone <- recv.Wait() }()

	tl, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	var handshakes atomic.Int32
	go func() {
		c, err := tl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.(*tls.Conn).HandshakeContext(ctx); err != nil {
			return
		}
		handshakes.Add(1)
		// The listener may not be up yet: retry until it is.
		var b net.Conn
		for b == nil && ctx.Err() == nil {
			if b, err = net.Dial("tcp", backend); err != nil {
				b = nil
				time.Sleep(50 * time.Millisecond)
			}
		}
		if b == nil {
			return
		}
		// The pusher's end ends the receiver's input.
		go func() { _, _ = io.Copy(c, b) }()
		_, _ = io.Copy(b, c)
		b.Close()
	}()

	_, port, _ := net.SplitHostPort(tl.Addr().String())
	d, err := Compile(TaskConfigInput{Type: TypeRestream, Target: "rtmps://127.0.0.1:" + port + "/rtmp/", Key: "FB-1234-0-AbC"}, testStream, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Args[len(d.Args)-1], "rtmps://127.0.0.1:"+port+"/rtmp/FB-1234-0-AbC"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	runWithInput(t, d, sampleFile(t))
	select {
	case err := <-recvDone:
		if err != nil {
			t.Fatalf("receiving ffmpeg: %v\n%s", err, recvLog.String())
		}
	case <-ctx.Done():
		<-recvDone // killed by the context
		t.Fatalf("the receiving ffmpeg did not finish\n%s", recvLog.String())
	}
	if handshakes.Load() != 1 {
		t.Fatalf("%d TLS handshakes, want 1", handshakes.Load())
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", out).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", out, err)
	}
	if codecs := strings.Fields(string(probe)); !slices.Contains(codecs, "h264") || !slices.Contains(codecs, "aac") {
		t.Fatalf("received codecs %v, want h264 and aac", codecs)
	}
}

// selfSigned is a TLS certificate for 127.0.0.1 (ffmpeg does not verify
// peers unless told to).
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
