package rtmpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp"
)

const secretKey = "sekrit-key-4711"

// authByKey publishes a stream key given as the name under the public name
// "x", refuses the name "denied" with a reason, and allows anything else.
func authByKey(ctx context.Context, req AuthRequest) (AuthResult, error) {
	switch req.Name {
	case secretKey:
		return AuthResult{Allow: true, Name: "x"}, nil
	case "denied":
		return AuthResult{Allow: false, Reason: "wrong key for denied"}, nil
	}
	return AuthResult{Allow: true}, nil
}

type ffprobeOut struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
}

func probeCodecs(t *testing.T, url string) map[string]string {
	t.Helper()
	out, err := runTool(t, 30*time.Second, "ffprobe", "-v", "error", "-rw_timeout", "15000000",
		"-show_entries", "stream=codec_name,codec_type,width,height", "-of", "json", url)
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	var p ffprobeOut
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, s := range p.Streams {
		got[s.CodecType] = s.CodecName
		if s.CodecType == "video" && (s.Width != 320 || s.Height != 180) {
			t.Errorf("video size %dx%d, want 320x180", s.Width, s.Height)
		}
	}
	return got
}

// One ffmpeg publisher (stream key given as the name), then real players.
func TestFFmpegPublishAndRealPlayers(t *testing.T) {
	var authReqs []AuthRequest
	var authMu sync.Mutex
	var done atomic.Int32
	env := startServer(t, Params{
		Authorize: func(ctx context.Context, req AuthRequest) (AuthResult, error) {
			authMu.Lock()
			authReqs = append(authReqs, req)
			authMu.Unlock()
			return authByKey(ctx, req)
		},
		PublishDone: func(app, name, _ string) {
			if app == "live" && name == "x" {
				done.Add(1)
			}
		},
	})
	pub, _ := startFFmpegPublish(t, env.url+"/live/"+secretKey+"?sig=topsecret", "60")
	si := waitLive(t, env.hub, "live/x")
	if si.Codec.VideoCodec != "h264" || si.Codec.AudioCodec != "aac" || si.Codec.Width != 320 ||
		si.Codec.Height != 180 || si.Codec.SampleRate != 44100 || si.Publisher.Protocol != "rtmp" {
		t.Fatalf("stream info %+v", si)
	}
	authMu.Lock()
	if len(authReqs) != 1 || authReqs[0].App != "live" || authReqs[0].Name != secretKey ||
		authReqs[0].RawQuery != "sig=topsecret" || authReqs[0].Protocol != "rtmp" || authReqs[0].Addr == "" {
		t.Fatalf("auth requests %+v", authReqs)
	}
	authMu.Unlock()

	t.Run("ffprobe", func(t *testing.T) {
		got := probeCodecs(t, env.url+"/live/x")
		if got["video"] != "h264" || got["audio"] != "aac" {
			t.Fatalf("ffprobe streams %v, want h264+aac", got)
		}
	})

	t.Run("20 ffmpeg players", func(t *testing.T) {
		const players = 20
		frameRe := regexp.MustCompile(`frame=(\d+)`)
		var wg sync.WaitGroup
		frames := make([]int, players)
		outs := make([]string, players)
		for i := 0; i < players; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := runTool(t, 60*time.Second, "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error",
					"-rw_timeout", "15000000", "-i", env.url+"/live/x", "-t", "3", "-progress", "pipe:1", "-f", "null", "-")
				outs[i] = out
				if err != nil {
					outs[i] += "\nexit: " + err.Error()
				}
				if m := frameRe.FindAllStringSubmatch(out, -1); len(m) > 0 {
					frames[i], _ = strconv.Atoi(m[len(m)-1][1])
				}
			}()
		}
		wg.Wait()
		for i, n := range frames {
			// 3 s at 25 fps; the GOP cache may add up to a second.
			if n < 60 {
				t.Errorf("player %d decoded %d frames:\n%s", i, n, outs[i])
			}
		}
		t.Logf("frames per player: %v", frames)
	})

	t.Run("gstreamer", func(t *testing.T) {
		// GStreamer's own RTMP client (rtmp2src), a third implementation
		// besides ffmpeg's and librtmp's: it plays, demuxes our FLV and
		// decodes H.264 and AAC.
		out, _ := runTool(t, 5*time.Second, "gst-launch-1.0", "-v", "rtmp2src", "location="+env.url+"/live/x",
			"!", "flvdemux", "name=d",
			"d.video", "!", "queue", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "name=v", "silent=false",
			"d.audio", "!", "queue", "!", "aacparse", "!", "avdec_aac", "!", "fakesink", "name=a", "silent=false")
		if strings.Contains(out, "erroneous pipeline") {
			t.Fatalf("GStreamer lacks an element (install gstreamer1.0-plugins-good, -bad and -libav: make deps-test):\n%s", out)
		}
		video := strings.Count(out, "GstFakeSink:v: last-message = chain")
		audio := strings.Count(out, "GstFakeSink:a: last-message = chain")
		t.Logf("gstreamer decoded %d video and %d audio buffers", video, audio)
		if video < 25 || audio < 25 {
			t.Fatalf("gstreamer decoded %d video and %d audio buffers in 5 s, want ≥ 25 each:\n%s", video, audio, lastLines(out, 20))
		}
	})

	t.Run("rtmpdump", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "dump.flv")
		out, err := runTool(t, 3*time.Second, "rtmpdump", "--live", "-r", env.url+"/live/x", "-o", file)
		if _, statErr := os.Stat(file); statErr != nil {
			t.Fatalf("rtmpdump wrote nothing (%v): %s", err, out)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fr := flv.NewReader(f, 0) // reads and checks the file header first
		var video, audio, keys int
		firstVideoIsConfig := false
		for {
			tag, err := fr.Next()
			if err != nil {
				if video == 0 && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("reading rtmpdump's file: %v", err)
				}
				break
			}
			switch tag.Type {
			case flv.TagVideo:
				key, header := flv.Classify(tag.Type, tag.Payload)
				if video == 0 {
					firstVideoIsConfig = header
				}
				if key {
					keys++
				}
				video++
			case flv.TagAudio:
				audio++
			}
		}
		if video < 25 || audio < 25 || keys < 1 || !firstVideoIsConfig {
			st, _ := os.Stat(file)
			t.Fatalf("rtmpdump got %d video (%d key, starts with config %v) and %d audio tags (%d bytes):\n%s", video, keys, firstVideoIsConfig, audio, st.Size(), out)
		}
	})

	t.Run("second publisher refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		err = cc.Publish(ctx, "x")
		var se *rtmp.StatusError
		if !errors.As(err, &se) || se.Code != codePublishBadName || !strings.Contains(se.Description, "already") {
			t.Fatalf("second publish: %v", err)
		}
		if si, _ := env.hub.Stream("live/x"); !si.Live || si.Publisher.RemoteAddr == "" {
			t.Fatal("refused publisher disturbed the live one")
		}
	})

	t.Run("unknown stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		var se *rtmp.StatusError
		if err := cc.Play(ctx, "nope"); !errors.As(err, &se) || se.Code != "NetStream.Play.StreamNotFound" {
			t.Fatalf("play unknown: %v", err)
		}
		out, err := runTool(t, 20*time.Second, "ffprobe", "-v", "error", env.url+"/live/nope")
		if err == nil {
			t.Fatalf("ffprobe of an unknown stream succeeded: %s", out)
		}
	})

	// The publisher ends: PublishDone is called once, the stream goes away.
	_ = pub.Process.Signal(os.Interrupt)
	testutil.Eventually(t, 15*time.Second, "publish done", func() bool { return done.Load() == 1 })
	testutil.Eventually(t, 5*time.Second, "stream removed", func() bool { _, ok := env.hub.Stream("live/x"); return !ok })

	logs := env.logs.String()
	for _, secret := range []string{secretKey, "topsecret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains the secret %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `msg="rtmp connection closed" relay=test component=rtmp conn=1 remote=`) ||
		!strings.Contains(logs, "name=x reason=unpublished") || !strings.Contains(logs, "bytes_in=") {
		t.Errorf("missing connection close lines:\n%s", logs)
	}
}

func TestDeniedPublishShowsReason(t *testing.T) {
	env := startServer(t, Params{Authorize: authByKey})
	out, err := runTool(t, 30*time.Second, "ffmpeg", "-hide_banner", "-loglevel", "info",
		"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-t", "2",
		"-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", env.url+"/live/denied")
	if err == nil {
		t.Fatalf("ffmpeg publish succeeded despite denial:\n%s", out)
	}
	if !strings.Contains(out, "wrong key for denied") {
		t.Fatalf("ffmpeg output lacks the reason:\n%s", out)
	}
	if len(env.hub.Streams()) != 0 {
		t.Fatal("denied publish created a stream")
	}
	testutil.Eventually(t, 5*time.Second, "close log line", func() bool {
		return strings.Contains(env.logs.String(), `reason="publish denied: wrong key for denied"`)
	})
}

func TestTakeoverClosesOldPublisher(t *testing.T) {
	env := startServer(t, Params{Authorize: func(ctx context.Context, req AuthRequest) (AuthResult, error) {
		return AuthResult{Allow: true, Takeover: true}, nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func() *rtmp.ClientConn {
		cc, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		if err := cc.Publish(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		return cc
	}
	first := dial()
	testutil.Eventually(t, 5*time.Second, "first publisher", func() bool { si, _ := env.hub.Stream("live/t"); return si.Live })
	second := dial()
	// The first connection is closed by the server: its writes start failing.
	testutil.Eventually(t, 10*time.Second, "old publisher closed", func() bool {
		return first.WriteMessage(rtmp.Message{Type: rtmp.TypeAudio, Payload: []byte{0xaf, 1, 0}}) != nil
	})
	if err := second.WriteMessage(rtmp.Message{Type: rtmp.TypeAudio, Payload: []byte{0xaf, 1, 0}}); err != nil {
		t.Fatalf("new publisher: %v", err)
	}
	if si, _ := env.hub.Stream("live/t"); !si.Live {
		t.Fatal("stream not live after takeover")
	}
}

func TestMaxConns(t *testing.T) {
	env := startServer(t, Params{MaxConns: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{HandshakeTimeout: 3 * time.Second}); err == nil {
		t.Fatal("second connection accepted over MaxConns=1")
	}
	if env.srv.Conns() != 1 {
		t.Fatalf("conns = %d", env.srv.Conns())
	}
}
