package rtsp

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	pionrtp "github.com/pion/rtp"
	"github.com/portier/portier/internal/testutil"
)

func TestProcUDPDrops(t *testing.T) {
	const proc = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:1F40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1001 2 0000000000000000 7
  101: 0100007F:1F41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1002 2 0000000000000000 0
  102: 0100007F:1F40 0200007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 2 0000000000000000 5
  103: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1004 2 0000000000000000 9
`
	out := map[uint64]uint64{}
	procUDPDrops(strings.NewReader(proc), map[uint64]bool{8000: true, 8001: true}, out)
	if len(out) != 3 || out[1001] != 7 || out[1002] != 0 || out[1003] != 5 {
		t.Fatalf("drops by inode %v", out)
	}
}

// The UDP sockets get the configured receive buffer (root may exceed the
// OS cap; others get the cap and a log line), and a burst into a tiny
// buffer shows as socket drops, which the flow counts as lost.
func TestUDPReadBufferAndDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("socket drops are read from /proc/net/udp")
	}
	s, _ := startServer(t, func(p *Params) { p.UDPReadBuffer = 8 << 20 })
	_, _, c, err := udpPair("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := setReadBuffer(c[0], 8<<20)
	c[0].Close()
	c[1].Close()
	if err != nil || got <= 0 {
		t.Fatalf("setReadBuffer: %d, %v", got, err)
	}
	t.Logf("8 MiB asked, %d granted", got)
	if d, ok := s.UDPDrops(); !ok || d != 0 {
		t.Fatalf("drops %d %v before any traffic", d, ok)
	}

	// A tiny buffer (the kernel's minimum) and a burst of 3000 packets.
	s, _ = startServer(t, func(p *Params) { p.UDPReadBuffer = 1 })
	desc := h264Session(testSPS, testPPS)
	tr := gortsplib.TransportUDP
	cl := gortsplib.Client{Transport: &tr, WriteQueueSize: 4096}
	if err := cl.StartRecording(rtspURL(s, "live/burst"), desc); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	payload := make([]byte, 1200)
	payload[0] = 0x41
	for i := range 3000 {
		pkt := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i) * 3000, Marker: true},
			Payload: payload}
		if err := cl.WritePacketRTP(desc.Medias[0], pkt); err != nil {
			t.Fatal(err)
		}
	}
	var drops uint64
	testutil.Eventually(t, 10*time.Second, "socket drops", func() bool {
		drops, _ = s.UDPDrops()
		return drops > 0
	})
	f := flowOf(s, "live/burst")
	if f == nil || f.Lost == 0 || f.Lost > drops {
		t.Fatalf("drops %d, flow %+v: want the drops counted as lost", drops, f)
	}
	t.Logf("3000 packets sent into a minimal buffer: %d dropped by the kernel, %d lost, %d received", drops, f.Lost, f.Packets)
}
