package rtsp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
	"github.com/portier/portier/tests/peers"
)

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startServer starts a hub and an RTSP server on 127.0.0.1 with free TCP
// and UDP ports. mod may adjust the params.
func startServer(t *testing.T, mod func(*Params)) (*Server, *stream.Hub) {
	t.Helper()
	hub := stream.NewHub(stream.HubParams{Logger: testLogger(), PublisherGrace: -1})
	p := Params{Addr: "127.0.0.1:0", UDPRTPAddr: "127.0.0.1:0", Hub: hub, Logger: testLogger(), PlayIdle: 2 * time.Second}
	if mod != nil {
		mod(&p)
	}
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		hub.Close()
	})
	return s, hub
}

func rtspURL(s *Server, path string) string {
	return "rtsp://" + s.Addr().String() + "/" + path
}

func waitLive(t *testing.T, hub *stream.Hub, path string, pub *peers.Proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if si, ok := hub.Stream(path); ok && si.Live && si.BytesIn > 0 {
			return
		}
		if pub != nil && pub.Exited() {
			t.Fatalf("publisher exited before %s went live: %s", path, pub.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not go live", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hubSummary reads a stream from the hub for d and checks what an RTMP or
// HTTP-FLV player would get: headers first, parseable H.264 and AAC
// configuration, keyframes, and monotonic timestamps per kind.
type hubSummary struct {
	width, height       int
	sampleRate, chans   int
	keyframes, frames   int
	audioFrames         int
	videoSpan           int64 // ms between first and last video DTS
	firstIsHeader       bool
	videoMono, audioMon bool
}

func readHub(t *testing.T, hub *stream.Hub, path string, d time.Duration) hubSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := hub.Read(ctx, path, stream.ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := hubSummary{videoMono: true, audioMon: true}
	var lastV, lastA, firstV int64 = -1, -1, -1
	first := true
	for {
		units, err := r.Next(ctx)
		if err != nil {
			break
		}
		for _, u := range units {
			if first {
				s.firstIsHeader = u.Header
				first = false
			}
			switch u.Kind {
			case stream.KindVideo:
				v, err := flv.ParseVideoTag(u.Payload)
				if err != nil || v.CodecID != flv.CodecAVC {
					t.Fatalf("video unit: %v codec %d", err, v.CodecID)
				}
				if v.SequenceHeader() {
					cfg, err := flv.ParseAVCConfig(v.Data)
					if err != nil {
						t.Fatal(err)
					}
					vi, err := cfg.VideoInfo()
					if err != nil {
						t.Fatal(err)
					}
					s.width, s.height = vi.Width, vi.Height
					continue
				}
				if v.Keyframe() != u.Key {
					t.Fatalf("unit Key %v but tag frame type %d", u.Key, v.FrameType)
				}
				if _, err := flv.SplitAVCC(v.Data, 4); err != nil {
					t.Fatalf("video frame AVCC: %v", err)
				}
				s.frames++
				if u.Key {
					s.keyframes++
				}
				if lastV >= 0 && u.DTS < lastV {
					s.videoMono = false
				}
				if firstV < 0 {
					firstV = u.DTS
				}
				lastV = u.DTS
				s.videoSpan = u.DTS - firstV
			case stream.KindAudio:
				a, err := flv.ParseAudioTag(u.Payload)
				if err != nil || a.SoundFormat != flv.SoundAAC {
					t.Fatalf("audio unit: %v format %d", err, a.SoundFormat)
				}
				if a.SequenceHeader() {
					ai, err := flv.ParseAudioSpecificConfig(a.Data)
					if err != nil {
						t.Fatal(err)
					}
					s.sampleRate, s.chans = ai.SampleRate, ai.Channels
					continue
				}
				s.audioFrames++
				if lastA >= 0 && u.DTS < lastA {
					s.audioMon = false
				}
				lastA = u.DTS
			}
		}
	}
	return s
}

// probeUDP runs ffprobe over RTSP with the UDP transport.
func probeUDP(t *testing.T, url string) (peers.ProbeResult, error) {
	t.Helper()
	bin := peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-v", "error", "-rtsp_transport", "udp", "-timeout", "10000000",
		"-show_streams", "-of", "json", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return peers.ProbeResult{}, fmt.Errorf("ffprobe udp: %w: %s", err, stderr.String())
	}
	var r peers.ProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, err
	}
	return r, nil
}

// checkProbe asserts ffprobe saw 640x360 H.264 and 44.1 kHz stereo AAC.
func checkProbe(t *testing.T, how string, r peers.ProbeResult, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", how, err)
	}
	v, ok := r.Video()
	if !ok || v.CodecName != "h264" || v.Width != 640 || v.Height != 360 {
		t.Fatalf("%s: video %+v (streams %v)", how, v, r.Codecs())
	}
	if !r.HasCodec("aac") {
		t.Fatalf("%s: no AAC in %v", how, r.Codecs())
	}
	for _, st := range r.Streams {
		if st.CodecType == "audio" && (st.SampleRate != "44100" || st.Channels != 2) {
			t.Fatalf("%s: audio %+v", how, st)
		}
	}
}

// dialRTSP connects a gortsplib client to url over tr; the client is
// closed at cleanup.
func dialRTSP(t *testing.T, url string, tr gortsplib.Transport) (*gortsplib.Client, *base.URL) {
	t.Helper()
	c, u, err := startClient(url, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, u
}

// startClient is dialRTSP for any goroutine: the caller closes the client.
func startClient(url string, tr gortsplib.Transport) (*gortsplib.Client, *base.URL, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, nil, err
	}
	c := &gortsplib.Client{Transport: &tr}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		return nil, nil, err
	}
	return c, u, nil
}

// h264Session is a session of one H.264 track (payload type 96) with the
// given parameter sets (nil: none in the SDP).
func h264Session(sps, pps []byte) *description.Session {
	return &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}},
	}}}
}
