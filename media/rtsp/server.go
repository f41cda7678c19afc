// Package rtsp is the relay's RTSP server: clients publish into the hub
// (ANNOUNCE/RECORD) and play from it (DESCRIBE/SETUP/PLAY), over UDP or
// TCP-interleaved, with H.264 and AAC. Published RTP is turned into the
// hub's FLV tag bodies, so an RTSP publish plays over RTMP and HTTP-FLV and
// an RTMP publish plays over RTSP. Every incoming RTP flow is measured
// where it arrives (media/rtp; over UDP before the reorder buffer, see
// steer.go) and exposed through Server.Stats; players and the bytes sent
// to them through Server.PlayCounts.
//
// Publish: rtsp://host/APP/NAME?key=KEY, rtsp://host/APP/KEY, or
// rtsp://NAME:KEY@host/APP/NAME (Basic credentials, asked for with a 401),
// authorised like RTMP (Params.Authorize) at the first SETUP, once the
// transport is accepted. Only H.264 (packetization-mode 0 or 1) and AAC
// (MPEG4-GENERIC, or MP4A-LATM with the configuration in the SDP) are
// accepted; anything else is refused at ANNOUNCE with 415 and the codec's
// name. Decode times are derived once at ingest (see convert.go); codec
// headers come from the SDP or in-band.
//
// Play: one fan-out per path reads the hub once, packetises each unit once
// and hands the packets to gortsplib, which queues them per player. Players
// therefore start at the next IDR (SPS and PPS are re-inserted before every
// IDR), not at the hub's cached GOP. RTP timestamps are exact for AAC and
// for video at common frame rates, though the hub keeps milliseconds.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"

	"github.com/portier/portier/media/stream"
)

// Defaults for Params zero values.
const (
	DefaultPlayWait    = 5 * time.Second
	DefaultPlayIdle    = 10 * time.Second
	DefaultReadTimeout = 10 * time.Second
	// DefaultUDPReadBuffer is the receive buffer asked for each UDP
	// socket: about 2.5 s of a 12 Mbit/s publish, so that a busy CPU
	// delays packets rather than losing them.
	DefaultUDPReadBuffer = 4 << 20
)

// Params configures a Server.
type Params struct {
	// Addr is the RTSP (TCP) listen address, e.g. ":8554" or "127.0.0.1:0".
	Addr string
	// UDPRTPAddr and UDPRTCPAddr enable the UDP transport. RTSP needs an
	// even RTP port and the next one for RTCP. A port of 0 in UDPRTPAddr
	// (with UDPRTCPAddr empty or also port 0) picks a free pair. Both
	// empty: TCP-interleaved only.
	UDPRTPAddr  string
	UDPRTCPAddr string
	// Hub receives publishes and serves plays. Required.
	Hub *stream.Hub
	// Authorize decides on publishes; nil allows every publish under the
	// requested name.
	Authorize AuthorizeFunc
	// AuthorizePlay decides on plays; nil allows every play.
	AuthorizePlay AuthorizeFunc
	// PublishDone, if set, is called (on its own goroutine) when an
	// authorised publish ends, with the app and public name it ran under
	// and the Tag its authorisation gave.
	PublishDone func(app, name, tag string)
	// PlayWait bounds how long DESCRIBE waits for a stream's first
	// keyframe (which carries the codec headers the SDP is made of).
	PlayWait time.Duration
	// PlayIdle: the per-path fan-out to RTSP players is closed this long
	// after its last player left (or after a DESCRIBE with no SETUP).
	PlayIdle time.Duration
	// ReadTimeout is the RTSP read timeout (and the silence after which a
	// UDP publisher is dropped).
	ReadTimeout time.Duration
	// UDPReadBuffer is the receive buffer, in bytes, asked for each UDP
	// socket (the shared RTP and RTCP ones and each publisher track's):
	// 0 means DefaultUDPReadBuffer, a negative value the OS default. Where
	// the OS grants less (Linux caps it at net.core.rmem_max unless the
	// process has CAP_NET_ADMIN), the server runs with what it got and
	// logs it once.
	UDPReadBuffer int
	Logger        *slog.Logger
}

// Server is an RTSP server in front of a hub. New builds it, Start
// listens, Close stops it and ends every session.
//
// Concurrency rule: mu guards the maps of publishers and play fan-outs and
// the fan-outs' session counts. It is never held across I/O, a hub call
// that waits, a callback (Authorize, PublishDone) or a gortsplib call.
type Server struct {
	p   Params
	log *slog.Logger
	srv *gortsplib.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	addr     net.Addr
	udpConns []*net.UDPConn // pre-opened RTP/RTCP pair handed to gortsplib
	rtpLocal *net.UDPAddr   // the RTP socket's bound address, for listenSteered

	mu      sync.Mutex
	started bool
	closed  bool
	outs    map[string]*outStream
	pubs    map[*publishSession]struct{}
	// Player accounting (see PlayCounts): fan-outs whose hub reader is
	// open, and the bytes of closed fan-outs' readers and of players that
	// left.
	live             map[*outStream]struct{}
	doneHub, doneOut uint64

	// UDPDrops' memory of the sockets' drop counters.
	dropsMu   sync.Mutex
	dropsSeen map[uint64]uint64
	dropsBase uint64
}

// New validates params and returns a server that is not listening yet.
func New(p Params) (*Server, error) {
	if p.Hub == nil {
		return nil, errors.New("rtsp: Params.Hub is required")
	}
	if p.Addr == "" {
		return nil, errors.New("rtsp: Params.Addr is required (e.g. :8554)")
	}
	if p.UDPRTPAddr == "" && p.UDPRTCPAddr != "" {
		return nil, errors.New("rtsp: UDPRTCPAddr without UDPRTPAddr")
	}
	if p.PlayWait <= 0 {
		p.PlayWait = DefaultPlayWait
	}
	if p.PlayIdle <= 0 {
		p.PlayIdle = DefaultPlayIdle
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = DefaultReadTimeout
	}
	if p.UDPReadBuffer == 0 {
		p.UDPReadBuffer = DefaultUDPReadBuffer
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	s := &Server{p: p, log: p.Logger.With("component", "rtsp"), outs: map[string]*outStream{}, pubs: map[*publishSession]struct{}{},
		live: map[*outStream]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens the listeners and starts serving.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("rtsp: server already started or closed")
	}
	s.started = true
	s.mu.Unlock()

	srv := &gortsplib.Server{
		Handler:     &handler{s: s},
		RTSPAddress: s.p.Addr,
		ReadTimeout: s.p.ReadTimeout,
		// Per-player packet queue: room for a large keyframe (a 1080p
		// IDR is a few hundred packets) plus audio, so a player is not
		// cut short by one burst; a player that stays behind loses packets.
		WriteQueueSize: 1024,
		// Basic only: the stream key as password is checked by the
		// control plane, which never gives keys out (see startPublish).
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic},
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err == nil {
				s.addr = ln.Addr()
			}
			return ln, err
		},
	}
	if s.p.UDPRTPAddr != "" {
		rtpAddr, rtcpAddr, conns, err := udpPair(s.p.UDPRTPAddr, s.p.UDPRTCPAddr)
		if err != nil {
			return err
		}
		s.udpConns = conns
		srv.UDPRTPAddress, srv.UDPRTCPAddress = rtpAddr, rtcpAddr
		srv.ListenPacket = s.listenPacket
	}
	// Set before Start: the handler reads it from the connections Start
	// begins to accept.
	s.srv = srv
	if err := srv.Start(); err != nil {
		s.srv = nil
		s.closeUDP()
		return fmt.Errorf("rtsp: listen on %s: %w", s.p.Addr, err)
	}
	s.log.Info("rtsp server listening", "addr", s.addr.String(), "udp_rtp", srv.UDPRTPAddress)
	return nil
}

// listenPacket hands gortsplib the pre-opened UDP sockets by address, so
// that the pair chosen for port 0 is the pair served. Sockets are opened
// with SO_REUSEPORT (on Linux) so that per-publisher connected sockets can
// share the RTP port (see listenSteered).
func (s *Server) listenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	for i, c := range s.udpConns {
		if c != nil && c.LocalAddr().String() == address {
			s.udpConns[i] = nil
			pc = c
			break
		}
	}
	if pc == nil {
		lc := net.ListenConfig{Control: reusePort}
		var err error
		if pc, err = lc.ListenPacket(context.Background(), network, address); err != nil {
			return nil, err
		}
	}
	if address == s.srv.UDPRTPAddress {
		s.rtpLocal, _ = pc.LocalAddr().(*net.UDPAddr)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		s.readBuffer(uc, true)
	}
	return pc, nil
}

// readBuffer sizes a UDP socket's receive buffer per Params.UDPReadBuffer;
// report logs what the OS granted when it is less (once per listener, not
// per publisher track).
func (s *Server) readBuffer(c *net.UDPConn, report bool) {
	want := s.p.UDPReadBuffer
	if want < 0 {
		return
	}
	got, err := setReadBuffer(c, want)
	switch {
	case err != nil:
		s.log.Warn("rtsp: UDP receive buffer not set; the OS default applies", "addr", c.LocalAddr().String(), "want", want, "err", err)
	case got < want && report:
		s.log.Warn("rtsp: UDP receive buffer capped by the OS: raise net.core.rmem_max (sysctl) or give CAP_NET_ADMIN",
			"addr", c.LocalAddr().String(), "want", want, "got", got)
	}
}

func (s *Server) closeUDP() {
	for i, c := range s.udpConns {
		if c != nil {
			c.Close()
			s.udpConns[i] = nil
		}
	}
}

// udpPair opens the RTP and RTCP sockets: the given addresses, or, for port
// 0, a free even port and the next one.
func udpPair(rtpAddr, rtcpAddr string) (string, string, []*net.UDPConn, error) {
	host, port, err := net.SplitHostPort(rtpAddr)
	if err != nil {
		return "", "", nil, fmt.Errorf("rtsp: UDP RTP address %q: %w", rtpAddr, err)
	}
	if port != "0" {
		if rtcpAddr == "" {
			n, err := strconv.Atoi(port)
			if err != nil {
				return "", "", nil, fmt.Errorf("rtsp: UDP RTP port %q: %w", port, err)
			}
			rtcpAddr = net.JoinHostPort(host, strconv.Itoa(n+1))
		}
		return rtpAddr, rtcpAddr, nil, nil
	}
	if rtcpAddr != "" {
		if _, p2, err := net.SplitHostPort(rtcpAddr); err != nil || p2 != "0" {
			return "", "", nil, fmt.Errorf("rtsp: with UDP RTP port 0, leave the RTCP address empty or at port 0 (got %q)", rtcpAddr)
		}
	}
	lc := net.ListenConfig{Control: reusePort}
	listen := func(addr string) (*net.UDPConn, error) {
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.UDPConn), nil
	}
	for range 50 {
		a, err := listen(net.JoinHostPort(host, "0"))
		if err != nil {
			return "", "", nil, fmt.Errorf("rtsp: UDP listen on %s: %w", host, err)
		}
		la := a.LocalAddr().(*net.UDPAddr)
		if la.Port%2 != 0 || la.Port >= 65535 {
			a.Close()
			continue
		}
		b, err := listen(net.JoinHostPort(la.IP.String(), strconv.Itoa(la.Port+1)))
		if err != nil {
			a.Close()
			continue
		}
		return a.LocalAddr().String(), b.LocalAddr().String(), []*net.UDPConn{a, b}, nil
	}
	return "", "", nil, errors.New("rtsp: found no free pair of consecutive UDP ports")
}

// Addr returns the RTSP listen address (with the actual port), or nil
// before Start.
func (s *Server) Addr() net.Addr { return s.addr }

// UDPAddrs returns the RTP and RTCP UDP addresses, or empty strings when
// UDP is off.
func (s *Server) UDPAddrs() (rtp, rtcp string) {
	if s.srv == nil {
		return "", ""
	}
	return s.srv.UDPRTPAddress, s.srv.UDPRTCPAddress
}

// Close stops listening, ends every session and publish, and waits for the
// server's goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// Fan-outs still preparing are left to playOut, which sees closed (and
	// its context cancelled) and closes them itself.
	outs := make([]*outStream, 0, len(s.outs))
	for _, o := range s.outs {
		select {
		case <-o.ready:
			outs = append(outs, o)
		default:
		}
	}
	s.mu.Unlock()

	s.cancel()
	if s.srv != nil {
		s.srv.Close() // closes every session: publishers end through OnSessionClose
	}
	s.closeUDP()
	for _, o := range outs {
		o.close(errServerClosed)
	}
	s.wg.Wait()
	return nil
}

var errServerClosed = errors.New("rtsp: server closed")
