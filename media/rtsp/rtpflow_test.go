package rtsp

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/bluenviron/gortsplib/v4"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/stream"
)

// A 640x360 baseline SPS and its PPS, as x264 writes them.
var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48}
	testPPS = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

// sendHandMade publishes hand-made H.264 RTP packets with the given
// sequence numbers (one single-NAL packet per frame, the first an IDR)
// through a gortsplib client with transport tr, and returns the flow's
// statistics once every packet was counted (before the session closes).
func sendHandMade(t *testing.T, s *Server, hub *stream.Hub, path string, tr gortsplib.Transport, seqs []uint16) rtp.Flow {
	t.Helper()
	desc := h264Session(testSPS, testPPS)
	c := gortsplib.Client{Transport: &tr}
	if err := c.StartRecording(rtspURL(s, path), desc); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, seq := range seqs {
		nalu := []byte{0x41, 0x9a, byte(i), 0x01, 0x02, 0x03} // non-IDR slice
		if i == 0 {
			nalu[0] = 0x65 // IDR slice
		}
		pkt := &pionrtp.Packet{
			Header:  pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 90000 + uint32(seq-seqs[0])*3000, Marker: true},
			Payload: nalu,
		}
		if err := c.WritePacketRTP(desc.Medias[0], pkt); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond) // keep loopback UDP buffers far from full
		}
	}
	// Stats are read while the session is still open.
	var f *rtp.Flow
	testutil.Eventually(t, 10*time.Second, "all packets counted", func() bool {
		f = flowOf(s, path)
		si, _ := hub.Stream(path)
		return f != nil && f.Packets >= uint64(len(seqs)) && si.BytesIn > 0
	})
	return *f
}

func flowOf(s *Server, path string) *rtp.Flow {
	for _, f := range s.Stats() {
		if f.Path == path {
			return &f
		}
	}
	return nil
}

func seqs(start uint16, n int, skip func(i int) bool) []uint16 {
	var out []uint16
	for i := 0; i < n; i++ {
		if skip == nil || !skip(i) {
			out = append(out, start+uint16(i))
		}
	}
	return out
}

// TestRTPLossOverUDP drops ten packets (across the 16-bit sequence wrap)
// from a hand-made UDP flow: the flow counts exactly those as lost.
func TestRTPLossOverUDP(t *testing.T) {
	s, hub := startServer(t, nil)
	// 200 packets starting at 65480: the gap (i = 40..49) straddles the wrap.
	sent := seqs(65480, 200, func(i int) bool { return i >= 40 && i < 50 })
	f := sendHandMade(t, s, hub, "live/lossy", gortsplib.TransportUDP, sent)
	if f.Transport != "udp" || f.Packets != 190 || f.Lost != 10 || f.Expected != 200 || f.Codec != "h264" {
		t.Fatalf("flow %+v", f)
	}
	if f.FractionLost != 0.05 {
		t.Fatalf("fraction lost %v", f.FractionLost)
	}
}

// TestRTPReorderDuplicate sends a hand-made flow with one packet swapped,
// one repeated and three missing, over TCP-interleaved and over UDP (where
// the relay reads the publisher's datagrams before any reorder buffer):
// every anomaly is counted as sent.
func TestRTPReorderDuplicate(t *testing.T) {
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			s, hub := startServer(t, nil)
			var sent []uint16
			for i := uint16(0); i < 100; i++ {
				switch i {
				case 50:
					sent = append(sent, 51, 50) // reordered
				case 51:
				case 60:
					sent = append(sent, 60, 60) // duplicated
				case 70, 71, 72:
					// lost
				default:
					sent = append(sent, i)
				}
			}
			f := sendHandMade(t, s, hub, "live/messy", tr, sent)
			want := rtp.Snapshot{Packets: 98, Expected: 100, Lost: 3, Duplicated: 1, Reordered: 1}
			if f.Transport != transportName(&tr) || f.Packets != want.Packets || f.Expected != want.Expected || f.Lost != want.Lost ||
				f.Duplicated != want.Duplicated || f.Reordered != want.Reordered || f.LateDiscarded != 0 {
				t.Fatalf("flow %+v", f)
			}
			if f.ClockRate != 90000 || f.JitterSeconds <= 0 {
				t.Fatalf("jitter %v s at clock %d: the sender ignores its RTP clock, so jitter must show", f.JitterSeconds, f.ClockRate)
			}
		})
	}
}

// TestInBandParamsAndNoMarker: a sender that puts SPS/PPS only in-band and
// sets no RTP marker bits (as some cameras do). The hub gets a sequence
// header from the in-band SPS/PPS, the picture size, and frames stamped
// with their own time (an access unit completed by the next timestamp is
// not given the next frame's time).
func TestInBandParamsAndNoMarker(t *testing.T) {
	s, hub := startServer(t, nil)
	desc := h264Session(nil, nil)
	tr := gortsplib.TransportTCP
	c := gortsplib.Client{Transport: &tr}
	if err := c.StartRecording(rtspURL(s, "live/camera"), desc); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seq := uint16(0)
	send := func(ts uint32, nalu []byte) {
		seq++
		pkt := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts}, Payload: nalu}
		if err := c.WritePacketRTP(desc.Medias[0], pkt); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 25; i++ {
		ts := uint32(i) * 3600
		if i%10 == 0 {
			send(ts, testSPS)
			send(ts, testPPS)
			send(ts, []byte{0x65, 0x88, byte(i)})
		} else {
			send(ts, []byte{0x41, 0x9a, byte(i)})
		}
	}
	testutil.Eventually(t, 5*time.Second, "frames in the hub", func() bool {
		si, _ := hub.Stream("live/camera")
		return si.Codec.Width == 640 && si.BytesIn > 300
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := hub.Read(ctx, "live/camera", stream.ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	units, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Headers, then the GOP cached from the IDR of frame 20 (at 800 ms).
	if len(units) < 3 || !units[0].Header || units[0].Kind != stream.KindVideo {
		t.Fatalf("units %+v", units)
	}
	cfg, err := flv.ParseAVCConfig(videoTag(t, units[0]).Data)
	if err != nil || !bytes.Equal(cfg.SPS[0], testSPS) || !bytes.Equal(cfg.PPS[0], testPPS) {
		t.Fatalf("in-band configuration %+v %v", cfg, err)
	}
	media := units[1:]
	if !media[0].Key || media[0].DTS != 800 {
		t.Fatalf("GOP starts with key=%v at %d ms, want the IDR of frame 20 at 800 ms", media[0].Key, media[0].DTS)
	}
	for i, u := range media {
		if u.DTS != 800+int64(i)*40 {
			t.Fatalf("frame %d of the GOP at %d ms, want %d", i, u.DTS, 800+i*40)
		}
	}
}
