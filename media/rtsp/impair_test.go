package rtsp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/tests/peers"
)

// impairment is what the forwarder does to each RTP datagram, at seeded
// rates.
type impairment struct {
	loss, dup, reorder float64       // probabilities
	jitter             time.Duration // uniform extra delay, 0..jitter
	reorderDelay       time.Duration // extra delay of a reordered packet
	seed               uint64
}

// sentPacket is one datagram the forwarder sent on to the server: the
// ground truth.
type sentPacket struct {
	ext uint64 // extended sequence number
	ts  uint32
	at  time.Time
}

// impairForwarder relays one RTSP/UDP publish between a client and the
// server through 127.0.0.1, impairing RTP and recording what it sent. It
// proxies the RTSP connection and rewrites the SETUP transports: the
// client is told the forwarder's ports as server_port, the server is told
// the forwarder's per-media ports as client_port. RTCP passes unimpaired.
type impairForwarder struct {
	t      *testing.T
	imp    impairment
	server *net.UDPAddr // the server's RTP address
	ln     net.Listener
	rtpIn  *net.UDPConn // F: RTP from the client
	rtcpIn *net.UDPConn // F+1

	mu      sync.Mutex
	rng     *rand.Rand
	out     map[int][2]*net.UDPConn // client RTP port -> sockets towards the server (RTP, RTCP)
	frozen  bool
	sent    map[uint32][]sentPacket // per SSRC, in send order
	lastExt map[uint32]uint64
	pending sync.WaitGroup
}

func newImpairForwarder(t *testing.T, s *Server, imp impairment) *impairForwarder {
	t.Helper()
	rtpAddr, _ := s.UDPAddrs()
	srv, err := net.ResolveUDPAddr("udp", rtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	f := &impairForwarder{t: t, imp: imp, server: srv, rng: rand.New(rand.NewPCG(imp.seed, imp.seed^0x5eed)),
		out: map[int][2]*net.UDPConn{}, sent: map[uint32][]sentPacket{}, lastExt: map[uint32]uint64{}}
	f.rtpIn, f.rtcpIn = udpPairForTest(t)
	if f.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go f.acceptRTSP(s.Addr().String())
	go f.readRTP()
	go f.readRTCP()
	t.Cleanup(func() {
		f.ln.Close()
		f.rtpIn.Close()
		f.rtcpIn.Close()
		f.pending.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.out {
			p[0].Close()
			p[1].Close()
		}
	})
	return f
}

func udpPairForTest(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	_, _, conns, err := udpPair("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	return conns[0], conns[1]
}

func (f *impairForwarder) url(path string) string {
	return "rtsp://" + f.ln.Addr().String() + "/" + path
}

var (
	clientPortRe = regexp.MustCompile(`client_port=(\d+)-(\d+)`)
	serverPortRe = regexp.MustCompile(`server_port=(\d+)-(\d+)`)
)

// acceptRTSP proxies one RTSP connection line by line (a UDP publish
// sends no binary data over it), rewriting the ports of SETUP.
func (f *impairForwarder) acceptRTSP(server string) {
	c, err := f.ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	u, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	defer u.Close()
	fport := f.rtpIn.LocalAddr().(*net.UDPAddr).Port
	go copyLines(c, u, func(line string) string { // server -> client
		return serverPortRe.ReplaceAllString(line, fmt.Sprintf("server_port=%d-%d", fport, fport+1))
	})
	copyLines(u, c, func(line string) string { // client -> server
		m := clientPortRe.FindStringSubmatch(line)
		if m == nil {
			return line
		}
		cport, _ := strconv.Atoi(m[1])
		a, b := udpPairForTest(f.t)
		f.mu.Lock()
		f.out[cport] = [2]*net.UDPConn{a, b}
		f.mu.Unlock()
		p := a.LocalAddr().(*net.UDPAddr).Port
		return clientPortRe.ReplaceAllString(line, fmt.Sprintf("client_port=%d-%d", p, p+1))
	})
}

func copyLines(dst io.Writer, src io.Reader, rewrite func(string) string) {
	r := bufio.NewReader(src)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if _, werr := io.WriteString(dst, rewrite(line)); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *impairForwarder) readRTCP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.rtcpIn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		f.mu.Lock()
		p, ok := f.out[from.Port-1]
		f.mu.Unlock()
		if ok {
			p[1].WriteToUDP(buf[:n], &net.UDPAddr{IP: f.server.IP, Port: f.server.Port + 1})
		}
	}
}

func (f *impairForwarder) readRTP() {
	for {
		buf := make([]byte, 2048)
		n, from, err := f.rtpIn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var h pionrtp.Header
		if _, err := h.Unmarshal(buf[:n]); err != nil {
			continue
		}
		f.mu.Lock()
		out, ok := f.out[from.Port]
		if !ok || f.frozen {
			f.mu.Unlock()
			continue
		}
		// The client sends in order: extend the sequence number here.
		ext, seen := f.lastExt[h.SSRC]
		if !seen {
			ext = 1<<16 + uint64(h.SequenceNumber)
		} else {
			ext = uint64(int64(ext) + int64(int16(h.SequenceNumber-uint16(ext))))
		}
		f.lastExt[h.SSRC] = ext
		imp := f.imp
		if f.rng.Float64() < imp.loss {
			f.mu.Unlock()
			continue
		}
		copies := 1
		if f.rng.Float64() < imp.dup {
			copies = 2
		}
		var delays []time.Duration
		for range copies {
			d := time.Duration(0)
			if imp.jitter > 0 {
				d = time.Duration(f.rng.Int64N(int64(imp.jitter)))
			}
			if f.rng.Float64() < imp.reorder {
				d += imp.reorderDelay
			}
			delays = append(delays, d)
		}
		f.mu.Unlock()
		pkt := sentPacket{ext: ext, ts: h.Timestamp}
		for _, d := range delays {
			if d == 0 {
				f.send(out[0], h.SSRC, pkt, buf[:n])
				continue
			}
			f.pending.Add(1)
			time.AfterFunc(d, func() {
				defer f.pending.Done()
				f.send(out[0], h.SSRC, pkt, buf[:n])
			})
		}
	}
}

// send writes one datagram to the server and records it, under the lock
// so that the record's order is the send order.
func (f *impairForwarder) send(c *net.UDPConn, ssrc uint32, pkt sentPacket, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return
	}
	pkt.at = time.Now()
	if _, err := c.WriteToUDP(data, f.server); err == nil {
		f.sent[ssrc] = append(f.sent[ssrc], pkt)
	}
}

// freeze stops forwarding RTP (RTCP keeps the session alive) and returns
// the ground truth per SSRC.
func (f *impairForwarder) freeze() map[uint32][]sentPacket {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
	f.pending.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint32][]sentPacket{}
	for k, v := range f.sent {
		out[k] = append([]sentPacket(nil), v...)
	}
	return out
}

// truth is what a receiver at the end of the link must report.
type truth struct {
	packets, lost, dups, reordered, late uint64
	jitterSeconds                        float64
}

// groundTruth computes the figures from the sent packets: RFC 3550 A.8
// jitter over first copies in arrival order, from the forwarder's send
// times; late = first copies a 64-packet reorder buffer fed in this order
// must throw away.
func groundTruth(sent []sentPacket, clockRate float64) truth {
	var tr truth
	seen := map[uint64]bool{}
	var minExt, maxExt uint64
	var transitPrev, jitter float64
	reorder := rtp.NewReorderer(rtp.DefaultReorderBuffer)
	for i, p := range sent {
		tr.packets++
		_, _, discarded := reorder.Process(&pionrtp.Packet{Header: pionrtp.Header{SequenceNumber: uint16(p.ext)}})
		if seen[p.ext] {
			tr.dups++
			continue
		}
		if discarded {
			tr.late++
		}
		seen[p.ext] = true
		if i == 0 {
			minExt, maxExt = p.ext, p.ext
		}
		if p.ext < maxExt {
			tr.reordered++
		}
		minExt, maxExt = min(minExt, p.ext), max(maxExt, p.ext)
		transit := float64(p.at.UnixNano())/1e9*clockRate - float64(p.ts)
		if len(seen) > 1 {
			d := math.Abs(transit - transitPrev)
			// RTP timestamps wrap: a difference of more than half the
			// range is a wrap, not a delay.
			if d > 1<<31 {
				d = math.Abs(d - 1<<32)
			}
			jitter += (d - jitter) / 16
		}
		transitPrev = transit
	}
	tr.lost = maxExt - minExt + 1 - uint64(len(seen))
	tr.jitterSeconds = jitter / clockRate
	return tr
}

// TestRTPStatsMatchTheWire publishes with real ffmpeg over RTSP/UDP
// through an impairing forwarder and compares the relay's per-SSRC
// figures with the forwarder's own record: on a clean link jitter within
// 1 ms; with loss, jitter, reordering and duplication every figure within
// 10 %.
func TestRTPStatsMatchTheWire(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	cases := []struct {
		name string
		imp  impairment
	}{
		{"clean", impairment{seed: 1}},
		{"impaired", impairment{loss: 0.03, dup: 0.02, reorder: 0.05, jitter: 6 * time.Millisecond, reorderDelay: 40 * time.Millisecond, seed: 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
			defer cancel()
			s, hub := startServer(t, nil)
			fw := newImpairForwarder(t, s, tc.imp)
			path := "live/" + tc.name
			pub := peers.Publish(t, ctx, fw.url(path), peers.PublishOpts{RTSPTransport: "udp", VideoBitrate: 1_000_000})
			defer pub.Stop()
			waitLive(t, hub, path, pub)
			time.Sleep(5 * time.Second) // media under test: the figures need packets, not a condition
			sent := fw.freeze()

			// Wait until every datagram sent is counted, then compare.
			var flows []rtp.Flow
			testutil.Eventually(t, 5*time.Second, "every sent packet counted", func() bool {
				flows = nil
				for _, fl := range s.Stats() {
					if fl.Path == path {
						flows = append(flows, fl)
					}
				}
				if len(flows) != 2 {
					return false
				}
				for _, fl := range flows {
					if fl.Packets != uint64(len(sent[fl.SSRC])) {
						return false
					}
				}
				return true
			})
			for _, fl := range flows {
				tr := groundTruth(sent[fl.SSRC], float64(fl.ClockRate))
				t.Logf("%s %s ssrc %08x: packets %d/%d lost %d/%d dups %d/%d reordered %d/%d late %d/%d jitter %.3f/%.3f ms (reported/truth)",
					tc.name, fl.Codec, fl.SSRC, fl.Packets, tr.packets, fl.Lost, tr.lost, fl.Duplicated, tr.dups,
					fl.Reordered, tr.reordered, fl.LateDiscarded, tr.late, fl.JitterSeconds*1e3, tr.jitterSeconds*1e3)
				if fl.Transport != "udp" {
					t.Fatalf("transport %q", fl.Transport)
				}
				within := func(what string, got, want uint64) {
					if math.Abs(float64(got)-float64(want)) > 0.1*float64(want) {
						t.Errorf("%s %s: reported %d, truth %d", fl.Codec, what, got, want)
					}
				}
				within("lost", fl.Lost, tr.lost)
				within("duplicated", fl.Duplicated, tr.dups)
				within("reordered", fl.Reordered, tr.reordered)
				within("late-discarded", fl.LateDiscarded, tr.late)
				if tc.imp.loss == 0 {
					if d := math.Abs(fl.JitterSeconds - tr.jitterSeconds); d > 0.001 {
						t.Errorf("%s jitter %.3f ms, truth %.3f ms", fl.Codec, fl.JitterSeconds*1e3, tr.jitterSeconds*1e3)
					}
				} else {
					if d := math.Abs(fl.JitterSeconds - tr.jitterSeconds); d > 0.1*tr.jitterSeconds {
						t.Errorf("%s jitter %.3f ms, truth %.3f ms", fl.Codec, fl.JitterSeconds*1e3, tr.jitterSeconds*1e3)
					}
					// Audio sends a few packets a second (ffmpeg packs several
					// AAC frames in one): only video is sure to be hit.
					if fl.Codec == "h264" && (tr.lost == 0 || tr.dups == 0 || tr.reordered == 0 || tr.late == 0) {
						t.Errorf("%s: the impairment did nothing (%+v)", fl.Codec, tr)
					}
				}
			}
		})
	}
}
