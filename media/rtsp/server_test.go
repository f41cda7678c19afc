package rtsp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/stream"
	"github.com/portier/portier/tests/peers"
)

// TestFFmpegPublishRTSP: ffmpeg publishes H.264 + AAC over RTSP (TCP and
// UDP); the hub gets FLV units an RTMP player can use; ffprobe plays the
// stream back over RTSP (TCP and UDP) and ffmpeg decodes it; the RTP flows
// show no loss on loopback.
func TestFFmpegPublishRTSP(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			var mu sync.Mutex
			var reqs, plays []AuthRequest
			var done []string
			s, hub := startServer(t, func(p *Params) {
				p.Authorize = func(_ context.Context, r AuthRequest) (AuthResult, error) {
					mu.Lock()
					reqs = append(reqs, r)
					mu.Unlock()
					return AuthResult{Allow: true}, nil
				}
				p.AuthorizePlay = func(_ context.Context, r AuthRequest) (AuthResult, error) {
					mu.Lock()
					plays = append(plays, r)
					mu.Unlock()
					return AuthResult{Allow: true}, nil
				}
				p.PublishDone = func(app, name, _ string) {
					mu.Lock()
					done = append(done, app+"/"+name)
					mu.Unlock()
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pub := peers.Publish(t, ctx, rtspURL(s, "live/cam?key=k1"), peers.PublishOpts{RTSPTransport: transport})
			waitLive(t, hub, "live/cam", pub)

			sum := readHub(t, hub, "live/cam", 2500*time.Millisecond)
			if !sum.firstIsHeader || sum.width != 640 || sum.height != 360 || sum.sampleRate != 44100 || sum.chans != 2 {
				t.Fatalf("hub headers: %+v", sum)
			}
			if sum.keyframes < 2 || sum.frames < 40 || sum.audioFrames < 60 || !sum.videoMono || !sum.audioMon {
				t.Fatalf("hub media: %+v", sum)
			}
			if sum.videoSpan < 1500 || sum.videoSpan > 3500 {
				t.Fatalf("video DTS span %d ms over 2.5 s of reading", sum.videoSpan)
			}
			si, _ := hub.Stream("live/cam")
			if si.Publisher.Protocol != "rtsp" || si.Codec.VideoCodec != "h264" || si.Codec.Width != 640 || si.Codec.AudioCodec != "aac" {
				t.Fatalf("stream info %+v", si)
			}

			r, err := peers.Probe(t, context.Background(), rtspURL(s, "live/cam"))
			checkProbe(t, "ffprobe rtsp/tcp", r, err)
			r, err = probeUDP(t, rtspURL(s, "live/cam"))
			checkProbe(t, "ffprobe rtsp/udp", r, err)
			frames, err := peers.PlayFrames(context.Background(), rtspURL(s, "live/cam"), 3*time.Second)
			// RTSP players join at the next IDR: up to 1 s of the window.
			if err != nil || frames < 35 {
				t.Fatalf("ffmpeg decoded %d frames over RTSP: %v", frames, err)
			}

			flows := s.Stats()
			t.Logf("hub %+v; ffmpeg decoded %d frames; flows %+v", sum, frames, flows)
			if len(flows) != 2 {
				t.Fatalf("flows %+v", flows)
			}
			for _, f := range flows {
				if f.Path != "live/cam" || f.Transport != transport || f.Direction != "in" || f.Packets < 50 || f.Lost != 0 || f.Duplicated != 0 {
					t.Fatalf("flow %+v", f)
				}
				if f.JitterSeconds < 0 || f.JitterSeconds > 0.5 {
					t.Fatalf("jitter %v s", f.JitterSeconds)
				}
			}
			if flows[0].Codec != "h264" || flows[1].Codec != "aac" || flows[0].ClockRate != 90000 || flows[1].ClockRate != 44100 {
				t.Fatalf("flow codecs %+v", flows)
			}

			pub.Stop()
			testutil.Eventually(t, 10*time.Second, "publish end", func() bool {
				si, ok := hub.Stream("live/cam")
				return (!ok || !si.Live) && len(s.Stats()) == 0
			})
			testutil.Eventually(t, 5*time.Second, "PublishDone", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(done) == 1 && done[0] == "live/cam"
			})
			mu.Lock()
			defer mu.Unlock()
			want := AuthRequest{App: "live", Name: "cam", RawQuery: "key=k1", Addr: reqs[0].Addr, Protocol: "rtsp"}
			if len(reqs) != 1 || reqs[0] != want || !strings.HasPrefix(reqs[0].Addr, "127.0.0.1:") {
				t.Fatalf("publish auth requests %+v", reqs)
			}
			// ffprobe tcp, ffprobe udp, ffmpeg: one authorisation each (at DESCRIBE, not again at SETUP).
			if len(plays) != 3 {
				t.Fatalf("play authorisations %+v", plays)
			}
			for _, r := range plays {
				if r.App != "live" || r.Name != "cam" || r.RawQuery != "" || r.Protocol != "rtsp" {
					t.Fatalf("play auth request %+v", r)
				}
			}
		})
	}
}

// TestPublishKeyAsName: the key given as the stream name is published
// under the public name the authoriser returns.
func TestPublishKeyAsName(t *testing.T) {
	s, hub := startServer(t, func(p *Params) {
		p.Authorize = func(_ context.Context, r AuthRequest) (AuthResult, error) {
			if r.Name == "s3cret" {
				return AuthResult{Allow: true, Name: "show"}, nil
			}
			return AuthResult{Reason: "wrong key"}, nil
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/s3cret"), peers.PublishOpts{NoAudio: true})
	waitLive(t, hub, "live/show", pub)
	if _, ok := hub.Stream("live/s3cret"); ok {
		t.Fatal("stream published under the key")
	}
	r, err := peers.Probe(t, context.Background(), rtspURL(s, "live/show"))
	if err != nil || len(r.Streams) != 1 || r.Streams[0].CodecName != "h264" {
		t.Fatalf("probe %+v: %v", r, err)
	}
}

// TestPublishRefused: refusals reach ffmpeg as RTSP statuses that say why,
// and nothing is published.
func TestPublishRefused(t *testing.T) {
	s, hub := startServer(t, func(p *Params) {
		p.Authorize = func(_ context.Context, r AuthRequest) (AuthResult, error) {
			switch r.Name {
			case "unknown":
				return AuthResult{}, fmt.Errorf("control plane: %w", ErrNotFound)
			case "nocreds":
				return AuthResult{}, fmt.Errorf("control plane: %w", ErrUnauthorized)
			case "down":
				return AuthResult{}, errors.New("control plane unreachable")
			}
			return AuthResult{Reason: "wrong key"}, nil
		}
	})
	cases := []struct {
		path string
		opts peers.PublishOpts
		want string
	}{
		{"live/cam?key=bad", peers.PublishOpts{}, "403 Forbidden: wrong key"},
		{"live/unknown", peers.PublishOpts{}, "404 Not Found: stream not found"},
		{"live/nocreds", peers.PublishOpts{}, "401"},
		{"live/down", peers.PublishOpts{}, "503 Service Unavailable: authorisation unavailable"},
		{"live/cam?key=bad", peers.PublishOpts{RTSPTransport: "udp"}, "403 Forbidden"},
		{"nopath", peers.PublishOpts{}, "400"},
		// A codec we cannot carry is refused before authorisation.
		{"live/mjpeg", peers.PublishOpts{NoAudio: true, ExtraOutputArgs: []string{"-c:v", "mjpeg"}}, "415 Unsupported Media Type: codec M-JPEG"},
		{"live/g711", peers.PublishOpts{ExtraOutputArgs: []string{"-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"}}, "415 Unsupported Media Type: codec G711"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pub := peers.Publish(t, ctx, rtspURL(s, c.path), c.opts)
		select {
		case <-pub.Done():
		case <-ctx.Done():
			t.Fatalf("%s: ffmpeg still running after a refusal", c.path)
		}
		cancel()
		if pub.ExitCode() == 0 {
			t.Fatalf("%s: ffmpeg exited 0", c.path)
		}
		if !strings.Contains(pub.Stderr(), c.want) {
			t.Fatalf("%s: ffmpeg output lacks %q:\n%s", c.path, c.want, pub.Stderr())
		}
	}
	if got := hub.Published(); len(got) != 0 {
		t.Fatalf("published after refusals: %v", got)
	}
}

// TestPlayRefusedAndNotFound: play refusals and unknown streams.
func TestPlayRefusedAndNotFound(t *testing.T) {
	s, hub := startServer(t, func(p *Params) {
		p.AuthorizePlay = func(_ context.Context, r AuthRequest) (AuthResult, error) {
			if r.Name == "private" {
				return AuthResult{Reason: "private stream"}, nil
			}
			return AuthResult{Allow: true}, nil
		}
	})
	pub, err := hub.Publish("live/private", stream.PublisherInfo{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := peers.Probe(t, context.Background(), rtspURL(s, "live/private")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("private play: %v", err)
	}
	if _, err := peers.Probe(t, context.Background(), rtspURL(s, "live/nothing")); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown stream: %v", err)
	}
}
