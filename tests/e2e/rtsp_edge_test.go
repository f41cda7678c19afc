package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/tests/peers"
)

// An edge serves RTSP players (TCP and UDP) of a stream published over
// RTMP to an origin, through its one upstream pull, and they keep playing
// when the origin it pulls from is killed and the edge fails over to the
// other: ffmpeg over TCP and over UDP, and a gortsplib UDP reader that
// measures the gap and checks that RTP timestamps never go back.
func TestRTSPEdgeFailover(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	cp := startControlPlane(t)
	o1 := startRelayProc(t, "origin-a", "origin", cp.URL)
	o2 := startRelayProc(t, "origin-b", "origin", cp.URL)
	byAddr := map[string]*relayProc{o1.rtmpAddr: o1, o2.rtmpAddr: o2}
	// The edge as operators run it: `portier relay --role edge` with RTSP
	// over TCP and UDP (a free RTP/RTCP pair).
	rtspAddr := peers.FreeAddr(t)
	edge := startRelayProc(t, "edge-1", "edge", cp.URL, "--origins", o1.rtmpAddr+","+o2.rtmpAddr,
		"--rtsp-addr", rtspAddr, "--rtsp-udp-addr", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	for _, o := range []*relayProc{o1, o2} {
		p := peers.Publish(t, ctx, "rtmp://"+o.rtmpAddr+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
		if err := p.WaitFrames(ctx, 10); err != nil {
			t.Fatalf("publish to %s: %v", o.name, err)
		}
	}
	c, _ := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	testutil.Eventually(t, 15*time.Second, "both origins in the directory", func() bool {
		o, err := c.Directory(ctx, "live", "foo")
		return err == nil && len(o) == 2
	})

	url := "rtsp://" + rtspAddr + "/live/foo"
	res, err := peers.ProbeUntil(t, ctx, url)
	if err != nil {
		t.Fatalf("ffprobe RTSP from the edge: %v", err)
	}
	if v, _ := res.Video(); !res.HasCodec("h264") || !res.HasCodec("aac") || v.Width != 640 || v.Height != 360 {
		t.Fatalf("ffprobe found %v %dx%d, want h264 640x360 + aac", res.Codecs(), v.Width, v.Height)
	}

	tcp := peers.Play(t, ctx, url, peers.PlayOpts{RTSPTransport: "tcp"})
	udp := peers.Play(t, ctx, url, peers.PlayOpts{RTSPTransport: "udp"})
	gp := startRTSPGapReader(t, url, gortsplib.TransportUDP)
	for name, p := range map[string]*peers.Proc{"tcp": tcp, "udp": udp} {
		if err := p.WaitFrames(ctx, 50); err != nil {
			t.Fatalf("ffmpeg RTSP/%s player on the edge: %v", name, err)
		}
	}
	gp.waitVideo(t, ctx, 100)

	edgeHTTP := edge.httpAddr
	testutil.Eventually(t, 10*time.Second, "edge counts its 3 RTSP players", func() bool {
		st, _ := findStream(relayStreams(t, edgeHTTP), "live/foo")
		return st.Players == 3
	})
	est, _ := findStream(relayStreams(t, edgeHTTP), "live/foo")
	victim := byAddr[est.Upstream]
	if victim == nil {
		t.Fatalf("edge pulls from %q, not one of the origins", est.Upstream)
	}
	if ost, _ := findStream(relayStreams(t, victim.httpAddr), "live/foo"); ost.Players != 1 {
		t.Errorf("origin %s players = %d, want exactly 1 (the edge's upstream session)", victim.name, ost.Players)
	}

	gp.resetGap()
	before := map[*peers.Proc]int64{tcp: tcp.Progress().Frame, udp: udp.Progress().Frame}
	victim.kill(syscall.SIGKILL)
	t.Logf("killed %s while the edge pulled from it", victim.name)
	testutil.Eventually(t, 15*time.Second, "edge switched origin", func() bool {
		st, _ := findStream(relayStreams(t, edgeHTTP), "live/foo")
		return st.Upstream != "" && st.Upstream != victim.rtmpAddr
	})
	// Two seconds of media after the switch, for every player.
	for name, p := range map[string]*peers.Proc{"tcp": tcp, "udp": udp} {
		if err := p.WaitFrames(ctx, before[p]+50); err != nil {
			t.Fatalf("ffmpeg RTSP/%s player after the failover: %v", name, err)
		}
		if p.Exited() {
			t.Errorf("ffmpeg RTSP/%s player exited across the failover", name)
		}
	}
	n := gp.videoPackets()
	gp.waitVideo(t, ctx, n+100)
	gap, back, err := gp.stats()
	t.Logf("RTSP/UDP reader: media gap across the failover %d ms, %d backward timestamps", gap.Milliseconds(), back)
	if err != nil {
		t.Errorf("RTSP reader ended: %v", err)
	}
	if back != 0 {
		t.Errorf("%d video RTP timestamps went backwards across the failover", back)
	}
	// The RTMP players of TestRelayFailoverOriginKill see under 1 s; RTSP
	// players wait for the next IDR on top (the GOP is 1 s). Generous for
	// a loaded machine.
	if gap >= 3*time.Second {
		t.Errorf("media gap across the failover %v, want < 3 s", gap)
	}
	if f, _ := metricValue(t, edgeHTTP, "portier_relay_upstream_failovers_total"); f != 1 {
		t.Errorf("edge counted %v failovers, want 1", f)
	}
	if st, _ := findStream(relayStreams(t, edgeHTTP), "live/foo"); st.Players != 3 {
		t.Errorf("edge players after the failover = %d, want 3", st.Players)
	}
}

// rtspGapReader plays an RTSP URL with gortsplib and records, for video,
// the longest time between two packets and RTP timestamps that went back.
type rtspGapReader struct {
	c    *gortsplib.Client
	done chan struct{} // closed when the session ended; err says why
	err  error

	mu      sync.Mutex
	packets int64
	last    time.Time
	gap     time.Duration
	lastTS  uint32
	haveTS  bool
	back    int
	ssrc    uint32
	newSSRC int
}

func startRTSPGapReader(t *testing.T, rawURL string, tr gortsplib.Transport) *rtspGapReader {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &rtspGapReader{c: &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr}}
	if err := r.c.Start2(); err != nil {
		t.Fatalf("RTSP reader: %v", err)
	}
	t.Cleanup(r.c.Close)
	desc, _, err := r.c.Describe(u)
	if err != nil {
		t.Fatalf("RTSP reader DESCRIBE: %v", err)
	}
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		t.Fatalf("RTSP reader: no H.264 in the SDP")
	}
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("RTSP reader SETUP: %v", err)
	}
	r.c.OnPacketRTP(medi, h264, r.onVideo)
	if _, err := r.c.Play(nil); err != nil {
		t.Fatalf("RTSP reader PLAY: %v", err)
	}
	r.done = make(chan struct{})
	go func() { r.err = r.c.Wait(); close(r.done) }()
	return r
}

func (r *rtspGapReader) onVideo(pkt *rtp.Packet) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.packets > 0 {
		r.gap = max(r.gap, now.Sub(r.last))
		if int32(pkt.Timestamp-r.lastTS) < 0 {
			r.back++
		}
		if pkt.SSRC != r.ssrc {
			r.newSSRC++
		}
	}
	r.packets++
	r.last, r.lastTS, r.ssrc = now, pkt.Timestamp, pkt.SSRC
}

func (r *rtspGapReader) resetGap() {
	r.mu.Lock()
	r.gap = 0
	r.mu.Unlock()
}

func (r *rtspGapReader) videoPackets() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets
}

// stats returns the longest gap since resetGap, the backward timestamps,
// and an error if the session ended or the SSRC changed.
func (r *rtspGapReader) stats() (time.Duration, int, error) {
	r.mu.Lock()
	gap, back, ssrc := r.gap, r.back, r.newSSRC
	r.mu.Unlock()
	if ssrc != 0 {
		return gap, back, fmt.Errorf("the SSRC changed %d times", ssrc)
	}
	select {
	case <-r.done:
		return gap, back, fmt.Errorf("session ended: %w", r.err)
	default:
	}
	return gap, back, nil
}

func (r *rtspGapReader) waitVideo(t *testing.T, ctx context.Context, n int64) {
	t.Helper()
	testutil.Eventually(t, time.Until(deadlineOr(ctx, 30*time.Second)), fmt.Sprintf("RTSP reader got %d video packets", n),
		func() bool { return r.videoPackets() >= n })
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return dl
	}
	return time.Now().Add(d)
}
