package rtsp

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmpserver"
	"github.com/portier/portier/media/stream"
	"github.com/portier/portier/tests/peers"
)

// startRTMP adds an RTMP server on the same hub.
func startRTMP(t *testing.T, hub *stream.Hub) *rtmpserver.Server {
	t.Helper()
	rs, err := rtmpserver.New(rtmpserver.Params{Addr: "127.0.0.1:0", Hub: hub, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

// TestRTMPPublishRTSPPlay: ffmpeg publishes RTMP; ffprobe reads it over
// RTSP (TCP and UDP) and a gortsplib client sees SPS and PPS before every
// IDR although the RTMP stream carries them only in its sequence header.
func TestRTMPPublishRTSPPlay(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+rs.Addr().String()+"/live/fromrtmp", peers.PublishOpts{})
	waitLive(t, hub, "live/fromrtmp", pub)

	r, err := peers.Probe(t, context.Background(), rtspURL(s, "live/fromrtmp"))
	checkProbe(t, "ffprobe rtsp/tcp of an RTMP publish", r, err)
	r, err = probeUDP(t, rtspURL(s, "live/fromrtmp"))
	checkProbe(t, "ffprobe rtsp/udp of an RTMP publish", r, err)

	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		got := readRTSP(t, rtspURL(s, "live/fromrtmp"), tr, 3500*time.Millisecond)
		t.Logf("%v: %+v", tr, got)
		if got.idrs < 2 || got.idrWithoutParams != 0 || got.frames < 40 {
			t.Fatalf("%v: %+v", tr, got)
		}
		if got.audioPackets < 50 {
			t.Fatalf("%v: %d audio packets", tr, got.audioPackets)
		}
		// One AAC access unit per packet: exactly 1024 samples apart,
		// though the hub keeps milliseconds (UDP may lose a packet).
		if got.audioSteps[1024] < (got.audioPackets-1)*95/100 {
			t.Fatalf("%v: audio RTP timestamp steps %v over %d packets", tr, got.audioSteps, got.audioPackets)
		}
		// 25 fps: consecutive frames are 40 ms = 3600 ticks apart.
		if got.tsSteps[3600] < got.frames*8/10 {
			t.Fatalf("%v: RTP timestamp steps %v over %d frames", tr, got.tsSteps, got.frames)
		}
	}
	frames, err := peers.PlayFrames(context.Background(), rtspURL(s, "live/fromrtmp"), 3*time.Second)
	// RTSP players join at the next IDR: up to 1 s of the window.
	if err != nil || frames < 35 {
		t.Fatalf("ffmpeg decoded %d frames over RTSP: %v", frames, err)
	}
	// Incoming RTMP is not RTP: no RTP flows.
	if f := s.Stats(); len(f) != 0 {
		t.Fatalf("flows %+v", f)
	}
}

// An RTMP publish at 30 fps plays over RTSP with exact 3000-tick video
// steps, though the hub keeps milliseconds (33 or 34 ms apart).
func TestRTSPPlayExactVideoTimestamps(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+rs.Addr().String()+"/live/thirty", peers.PublishOpts{FrameRate: 30})
	waitLive(t, hub, "live/thirty", pub)
	got := readRTSP(t, rtspURL(s, "live/thirty"), gortsplib.TransportTCP, 3*time.Second)
	t.Logf("%+v", got)
	if got.frames < 40 || got.tsSteps[3000] < (got.frames-1)*95/100 {
		t.Fatalf("RTP timestamp steps %v over %d frames", got.tsSteps, got.frames)
	}
}

type rtspRead struct {
	frames, idrs, idrWithoutParams, audioPackets int
	tsSteps                                      map[uint32]int
	audioSteps                                   map[uint32]int // RTP timestamp steps between audio packets
}

// readRTSP plays url with gortsplib's client for d and checks the H.264
// access units.
func readRTSP(t *testing.T, url string, tr gortsplib.Transport, d time.Duration) rtspRead {
	t.Helper()
	c, u := dialRTSP(t, url, tr)
	defer c.Close() // before the next read, not at the end of the test
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	var h *format.H264
	medi := desc.FindFormat(&h)
	if medi == nil {
		t.Fatalf("no H.264 in %+v", desc)
	}
	var aac *format.MPEG4Audio
	amedi := desc.FindFormat(&aac)
	if amedi == nil || aac.Config.SampleRate != 44100 {
		t.Fatalf("no 44.1 kHz AAC in %+v", desc)
	}
	if sps, pps := h.SafeParams(); len(sps) == 0 || len(pps) == 0 {
		t.Fatal("SDP without sprop-parameter-sets")
	}
	dec, err := h.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	res := rtspRead{tsSteps: map[uint32]int{}, audioSteps: map[uint32]int{}}
	var lastATS uint32
	var lastTS uint32
	started := false
	c.OnPacketRTP(medi, h, func(pkt *pionrtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				t.Errorf("decode: %v", err)
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var sps, pps bool
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = true
			case h264.NALUTypePPS:
				pps = true
			case h264.NALUTypeIDR:
				res.idrs++
				if !sps || !pps {
					res.idrWithoutParams++
				}
			}
		}
		if res.idrs == 0 {
			return // joined mid-GOP: wait for the first IDR
		}
		res.frames++
		if started {
			res.tsSteps[pkt.Timestamp-lastTS]++
		}
		started, lastTS = true, pkt.Timestamp
	})
	c.OnPacketRTP(amedi, aac, func(pkt *pionrtp.Packet) {
		mu.Lock()
		if res.audioPackets > 0 {
			res.audioSteps[pkt.Timestamp-lastATS]++
		}
		res.audioPackets++
		lastATS = pkt.Timestamp
		mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d) // the measurement window itself
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	return res
}

// TestRTSPPublishRTMPPlay: ffmpeg publishes over RTSP; ffprobe and ffmpeg
// read it over RTMP (through media/rtmpserver).
func TestRTSPPublishRTMPPlay(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/fromrtsp"), peers.PublishOpts{RTSPTransport: "udp"})
	waitLive(t, hub, "live/fromrtsp", pub)
	url := "rtmp://" + rs.Addr().String() + "/live/fromrtsp"
	r, err := peers.Probe(t, context.Background(), url)
	checkProbe(t, "ffprobe rtmp of an RTSP publish", r, err)
	frames, err := peers.PlayFrames(context.Background(), url, 2*time.Second)
	if err != nil || frames < 30 {
		t.Fatalf("ffmpeg decoded %d frames over RTMP: %v", frames, err)
	}
}

// TestRTSPPublishWithBFrames: an RTSP publish with B-frames gets decode
// times derived once at ingest: monotonic DTS, positive composition
// offsets, and RTMP players decode it.
func TestRTSPPublishWithBFrames(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/bframes"), peers.PublishOpts{BFrames: true})
	waitLive(t, hub, "live/bframes", pub)

	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	rd, err := hub.Read(rctx, "live/bframes", stream.ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var frames, positiveCTS int
	last := int64(-1)
	for {
		units, err := rd.Next(rctx)
		if err != nil {
			break
		}
		for _, u := range units {
			if u.Kind != stream.KindVideo || u.Header {
				continue
			}
			v, err := flv.ParseVideoTag(u.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if v.CTS < 0 || u.DTS < last {
				t.Fatalf("frame %d: DTS %d after %d, CTS %d", frames, u.DTS, last, v.CTS)
			}
			if v.CTS > 0 {
				positiveCTS++
			}
			last = u.DTS
			frames++
		}
	}
	t.Logf("%d frames read from the hub, %d with CTS > 0", frames, positiveCTS)
	if frames < 40 || positiveCTS < frames/4 {
		t.Fatalf("%d frames, %d with CTS > 0", frames, positiveCTS)
	}
	n, err := peers.PlayFrames(context.Background(), "rtmp://"+rs.Addr().String()+"/live/bframes", 2*time.Second)
	if err != nil || n < 30 {
		t.Fatalf("ffmpeg decoded %d frames over RTMP: %v", n, err)
	}
}

// TestGStreamerPlays: GStreamer's rtspsrc (another RTSP client than
// ffmpeg's) plays an RTSP publish over TCP and UDP and decodes H.264 and
// AAC from our SDP and packetisation, without gortsplib's 1 s sleep per
// SETUP (see handler.OnRequest): in 5 s it decoded 70-72 frames with the
// sleeps, 117-120 without.
func TestGStreamerPlays(t *testing.T) {
	bin := peers.RequireTool(t, "gst-launch-1.0")
	s, hub := startServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/gst"), peers.PublishOpts{})
	waitLive(t, hub, "live/gst", pub)
	for _, proto := range []string{"tcp", "udp"} {
		video, audio := gstDecode(t, bin, rtspURL(s, "live/gst"), proto, 5*time.Second)
		t.Logf("%s: gstreamer decoded %d video frames, %d audio frames", proto, video, audio)
		if video < 95 || audio < 50 {
			t.Fatalf("%s: gstreamer decoded %d video and %d audio frames", proto, video, audio)
		}
	}
}

// gstDecode runs rtspsrc with decoders into counting fakesinks for d and
// returns how many video and audio buffers were decoded.
func gstDecode(t *testing.T, bin, url, proto string, d time.Duration) (video, audio int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v", "rtspsrc", "location="+url, "protocols="+proto, "latency=0", "name=s",
		"s.", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "name=v", "silent=false",
		"s.", "!", "rtpmp4gdepay", "!", "aacparse", "!", "avdec_aac", "!", "fakesink", "name=a", "silent=false")
	cmd.WaitDelay = peers.StopGrace
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // killed at the deadline by design
	if strings.Contains(stderr.String(), "erroneous pipeline") {
		t.Fatalf("GStreamer lacks an element (install gstreamer1.0-plugins-good, -bad and -libav: make deps-test): %s", stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(line, "GstFakeSink:v: last-message = chain"):
			video++
		case strings.Contains(line, "GstFakeSink:a: last-message = chain"):
			audio++
		}
		if strings.Contains(line, "ERROR") {
			t.Fatalf("gstreamer %s: %s", proto, line)
		}
	}
	return video, audio
}

// TestRTMPBFramesPlayRTSP: an RTMP publish with B-frames plays over RTSP:
// presentation times (DTS + CTS) go into the RTP timestamps and ffmpeg
// decodes the stream.
func TestRTMPBFramesPlayRTSP(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+rs.Addr().String()+"/live/bf", peers.PublishOpts{BFrames: true})
	waitLive(t, hub, "live/bf", pub)
	got := readRTSP(t, rtspURL(s, "live/bf"), gortsplib.TransportTCP, 3500*time.Millisecond)
	t.Logf("%+v", got)
	backwards := 0
	for step := range got.tsSteps {
		if int32(step) < 0 {
			backwards += got.tsSteps[step]
		}
	}
	if got.idrs < 2 || got.idrWithoutParams != 0 || backwards == 0 {
		t.Fatalf("%+v: want IDRs with parameter sets and presentation times going back at B-frames", got)
	}
	frames, err := peers.PlayFrames(context.Background(), rtspURL(s, "live/bf"), 3*time.Second)
	// RTSP players join at the next IDR: up to 1 s of the window.
	if err != nil || frames < 35 {
		t.Fatalf("ffmpeg decoded %d frames over RTSP: %v", frames, err)
	}
}

// TestRTMPWithMP3AudioPlaysVideoOverRTSP: audio RTSP play does not carry
// (MP3 from an RTMP publisher) is left out of the SDP; the video plays.
func TestRTMPWithMP3AudioPlaysVideoOverRTSP(t *testing.T) {
	s, hub := startServer(t, nil)
	rs := startRTMP(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+rs.Addr().String()+"/live/mp3",
		peers.PublishOpts{ExtraOutputArgs: []string{"-c:a", "libmp3lame", "-b:a", "64k"}})
	waitLive(t, hub, "live/mp3", pub)
	r, err := peers.Probe(t, context.Background(), rtspURL(s, "live/mp3"))
	if err != nil || len(r.Streams) != 1 || r.Streams[0].CodecName != "h264" {
		t.Fatalf("probe %v: %v", r.Codecs(), err)
	}
	frames, err := peers.PlayFrames(context.Background(), rtspURL(s, "live/mp3"), 3*time.Second)
	if err != nil || frames < 35 {
		t.Fatalf("ffmpeg decoded %d frames over RTSP: %v", frames, err)
	}
}
