package rtsp

import (
	"errors"
	"net"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/rtp"
)

// Why publishers' UDP RTP is read by our own sockets: gortsplib (v4.16.2)
// puts a 64-packet reorder buffer between its UDP socket and every
// callback, and offers no hook before it (its ListenPacket must return a
// *net.UDPConn). Counted after that buffer, duplicates and reordering
// vanish, late packets it throws away look lost, and arrival times include
// the buffer's wait. So for each UDP publisher track we open a socket on
// the server's RTP port connected to the publisher's RTP address; the
// kernel hands that publisher's datagrams to it instead of to gortsplib's
// listener. We stamp and count each packet as it is read, then run our own
// reorder buffer (media/rtp.Reorderer) before depacketising, and count what
// it throws away as late, not lost.
//
// gortsplib still owns RTCP (sender reports keep the session alive: every
// RTP sender sends them, ffmpeg every 5 s) and the RTSP session.

// maxRTPDatagram is gortsplib's limit for one UDP RTP packet, plus one
// byte to detect larger ones.
const maxRTPDatagram = 1472 + 1

// noteSetup remembers the publisher's RTP client port of a UDP SETUP, in
// SETUP order (gortsplib lists set-up medias in that order).
func (p *publishSession) noteSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) {
	if ctx.Transport != gortsplib.TransportUDP {
		return
	}
	var ths headers.Transports
	if err := ths.Unmarshal(ctx.Request.Header["Transport"]); err != nil {
		return
	}
	if tcp, ok := ctx.Conn.NetConn().RemoteAddr().(*net.TCPAddr); ok {
		p.clientIP = tcp.IP
	}
	for _, th := range ths {
		if th.Protocol == headers.TransportProtocolUDP && th.ClientPorts != nil &&
			(th.Delivery == nil || *th.Delivery == headers.TransportDeliveryUnicast) {
			p.clientRTPPorts = append(p.clientRTPPorts, th.ClientPorts[0])
			return
		}
	}
	p.clientRTPPorts = append(p.clientRTPPorts, -1) // unknown: not steered
}

// steer opens the per-track sockets of a UDP publish and starts their
// readers. It reports, per track, whether the track is read by us; tracks
// that could not be steered stay with gortsplib (measured after its
// reorder buffer) and the reason is logged once.
func (p *publishSession) steer(transport string) []bool {
	out := make([]bool, len(p.tracks))
	if transport != "udp" || p.s.rtpLocal == nil || p.clientIP == nil {
		return out
	}
	medias := p.ss.SetuppedMedias()
	if len(medias) != len(p.clientRTPPorts) {
		p.s.log.Warn("rtsp publish: UDP statistics after the reorder buffer", "path", p.path, "addr", p.addr,
			"reason", "SETUP ports do not match the set-up medias")
		return out
	}
	for i, t := range p.tracks {
		port := -1
		for j, m := range medias {
			if m == t.media {
				port = p.clientRTPPorts[j]
			}
		}
		if port <= 0 {
			continue
		}
		conn, err := listenSteered(p.s.rtpLocal, &net.UDPAddr{IP: p.clientIP, Port: port})
		if err == nil {
			p.s.readBuffer(conn, false)
		}
		if err != nil {
			p.s.log.Warn("rtsp publish: UDP statistics after the reorder buffer", "path", p.path, "addr", p.addr, "err", err)
			continue
		}
		p.steerMu.Lock()
		if p.steerClosed {
			p.steerMu.Unlock()
			conn.Close()
			return out
		}
		p.steered = append(p.steered, conn)
		p.steerMu.Unlock()
		out[i] = true
		handle := p.in.Handler(t)
		p.s.wg.Add(1)
		go func() {
			defer p.s.wg.Done()
			p.readSteered(conn, t, p.flows[i], handle)
		}()
	}
	return out
}

// readSteered reads one track's RTP until its socket is closed: count and
// stamp each packet on arrival, reorder, depacketise.
func (p *publishSession) readSteered(conn *net.UDPConn, t Track, fl *flow, handle func(*description.Media, *pionrtp.Packet)) {
	pt := t.media.Formats[0].PayloadType()
	reorder := rtp.NewReorderer(rtp.DefaultReorderBuffer)
	buf := make([]byte, maxRTPDatagram)
	for {
		n, err := conn.Read(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A connected UDP socket reports ICMP errors on read; the
			// next datagram is still good.
			continue
		}
		p.udpBytes.Add(uint64(n))
		if n == maxRTPDatagram {
			p.decodeError(errors.New("RTP packet too big for UDP"))
			continue
		}
		pkt := &pionrtp.Packet{}
		if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			p.decodeError(err)
			continue
		}
		if pkt.PayloadType != pt {
			p.decodeError(errors.New("RTP packet of an unknown payload type"))
			continue
		}
		st, arrival := fl.update(pkt, now)
		ready, skipped, discarded := reorder.Process(pkt)
		if discarded && arrival != rtp.ArrivalDuplicate && arrival != rtp.ArrivalIgnored {
			st.LateDiscarded()
		}
		if skipped > 0 {
			p.lostReported.Add(uint64(skipped))
		}
		for _, q := range ready {
			handle(t.media, q)
		}
	}
}

// closeSteered closes the track sockets; their readers end.
func (p *publishSession) closeSteered() {
	p.steerMu.Lock()
	p.steerClosed = true
	conns := p.steered
	p.steered = nil
	p.steerMu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
