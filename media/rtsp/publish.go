package rtsp

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/stream"
)

// publishSession feeds one RTSP publisher's media into the hub.
type publishSession struct {
	s         *Server
	ss        *gortsplib.ServerSession
	app, name string
	tag       string // the authorisation's Tag, for PublishDone
	path      string
	addr      string
	pub       *stream.Publisher
	tracks    []Track
	in        *Ingest

	flows        []*flow // fixed after newPublishSession
	transport    atomic.Pointer[string]
	lostReported atomic.Uint64 // losses gortsplib reports (its UDP reorder buffer gave up)
	decodeErrs   atomic.Uint64
	lastDecodeLg atomic.Int64 // unix nanos of the last decode-error log line
	closeOnce    sync.Once
	recordTimer  *time.Timer // closes a session that never sends RECORD
	recording    atomic.Bool

	// UDP: the publisher's RTP ports from its SETUPs, in SETUP order, and
	// the sockets that read them (see steer.go). Set on the session's
	// goroutine before RECORD; steered is closed by close.
	clientIP       net.IP
	clientRTPPorts []int
	steerMu        sync.Mutex
	steered        []*net.UDPConn
	steerClosed    bool
	udpBytes       atomic.Uint64 // RTP bytes read by the steered sockets
}

// flow is the statistics of one incoming track. One Stats per SSRC; a
// track that changes SSRC more than maxSSRCs times keeps the newest.
type flow struct {
	track, codec string
	clockRate    int
	mu           sync.Mutex
	stats        []*rtp.Stats // newest last
	ssrcs        []uint32
}

const maxSSRCs = 4

// update counts pkt in the Stats of its SSRC and returns them with how
// the packet was counted.
func (f *flow) update(pkt *pionrtp.Packet, now time.Time) (*rtp.Stats, rtp.Arrival) {
	f.mu.Lock()
	var st *rtp.Stats
	for i, ssrc := range f.ssrcs {
		if ssrc == pkt.SSRC {
			st = f.stats[i]
			break
		}
	}
	if st == nil {
		st = rtp.NewStats(f.clockRate)
		if len(f.stats) == maxSSRCs {
			f.stats, f.ssrcs = f.stats[1:], f.ssrcs[1:]
		}
		f.stats = append(f.stats, st)
		f.ssrcs = append(f.ssrcs, pkt.SSRC)
	}
	f.mu.Unlock()
	return st, st.Update(pkt, now)
}

func (f *flow) snapshots() []rtp.Snapshot {
	f.mu.Lock()
	list := append([]*rtp.Stats(nil), f.stats...)
	f.mu.Unlock()
	out := make([]rtp.Snapshot, len(list))
	for i, st := range list {
		out[i] = st.Snapshot()
	}
	return out
}

func (s *Server) newPublishSession(ss *gortsplib.ServerSession, pub *stream.Publisher, app, name, tag, addr string, tracks []Track) (*publishSession, error) {
	p := &publishSession{s: s, ss: ss, app: app, name: name, tag: tag, path: app + "/" + name, addr: addr, pub: pub, tracks: tracks}
	in, err := NewIngest(IngestParams{Publisher: pub, Tracks: tracks, PTS: ss.PacketPTS2, OnDecodeError: p.decodeError,
		OnPublisherGone: func(err error) {
			s.log.Info("rtsp publish ended by the hub", "path", p.path, "addr", p.addr, "err", err)
			go ss.Close()
		}})
	if err != nil {
		return nil, err
	}
	p.in = in
	for _, t := range tracks {
		p.flows = append(p.flows, t.newFlow())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errServerClosed
	}
	s.pubs[p] = struct{}{}
	s.mu.Unlock()
	// gortsplib sets no read deadline before RECORD: a client that
	// announces and then idles would hold the stream. Give it ReadTimeout.
	p.recordTimer = time.AfterFunc(s.p.ReadTimeout, func() {
		if !p.recording.Load() {
			s.log.Info("rtsp publish dropped: no RECORD after ANNOUNCE", "path", p.path, "addr", p.addr, "after", s.p.ReadTimeout)
			p.ss.Close()
		}
	})
	return p, nil
}

// record writes the codec headers known from the SDP and starts taking
// packets.
func (p *publishSession) record() error {
	p.recording.Store(true)
	p.recordTimer.Stop()
	if err := p.in.WriteHeaders(); err != nil {
		return err
	}

	// Read here, on the session's goroutine, that set it at SETUP.
	tr := transportName(p.ss.SetuppedTransport())
	p.transport.Store(&tr)
	steered := p.steer(tr)
	for i, t := range p.tracks {
		fl := p.flows[i]
		if steered[i] {
			// Read by our own socket; gortsplib never sees its RTP.
			continue
		}
		medi := t.media
		handle := p.in.Handler(t)
		p.ss.OnPacketRTP(medi, medi.Formats[0], func(pkt *pionrtp.Packet) {
			fl.update(pkt, time.Now())
			handle(medi, pkt)
		})
	}
	return nil
}

// decodeError counts a malformed packet or access unit and logs at most
// one line every 10 seconds per publisher.
func (p *publishSession) decodeError(err error) {
	p.decodeErrs.Add(1)
	now := time.Now().UnixNano()
	last := p.lastDecodeLg.Load()
	if now-last < int64(10*time.Second) || !p.lastDecodeLg.CompareAndSwap(last, now) {
		return
	}
	p.s.log.Warn("rtsp publish: undecodable media", "path", p.path, "addr", p.addr, "err", err, "errors", p.decodeErrs.Load())
}

// close ends the publish: the hub's publisher, the statistics, and the
// control plane's live state.
func (p *publishSession) close(reason error) {
	p.closeOnce.Do(func() {
		p.recordTimer.Stop()
		p.closeSteered()
		p.in.Close()
		p.pub.Close()
		p.s.mu.Lock()
		delete(p.s.pubs, p)
		p.s.mu.Unlock()
		var packets, lost, late uint64
		for _, f := range p.flows {
			for _, sn := range f.snapshots() {
				packets += sn.Packets
				lost += sn.Lost
				late += sn.LateDiscarded
			}
		}
		p.s.log.Info("rtsp publish ended", "path", p.path, "addr", p.addr, "bytes_in", p.ss.BytesReceived()+p.udpBytes.Load(),
			"rtp_packets", packets, "rtp_lost", lost, "rtp_late_discarded", late, "rtp_skipped_by_reorder_buffer", p.lostReported.Load(),
			"decode_errors", p.decodeErrs.Load(), "reason", reason)
		p.s.publishDone(p.app, p.name, p.tag)
	})
}

// publishDone tells the PublishDone callback, off the caller's goroutine.
func (s *Server) publishDone(app, name, tag string) {
	if s.p.PublishDone == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.p.PublishDone(app, name, tag)
	}()
}
