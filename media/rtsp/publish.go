package rtsp

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/stream"
)

// publishTrack is one accepted media of an ANNOUNCE.
type publishTrack struct {
	index int
	media *description.Media
	h264  *format.H264
	aac   *format.MPEG4Audio
	latm  *format.MPEG4AudioLATM // AAC in LATM (RFC 6416), config out of band
}

// checkPublishMedias accepts at most one H.264 video and one AAC
// (MPEG4-GENERIC) audio media, each with a single format, and refuses
// anything else with an error that names what was offered.
func checkPublishMedias(desc *description.Session) ([]publishTrack, error) {
	if desc == nil || len(desc.Medias) == 0 {
		return nil, errors.New("the SDP has no media")
	}
	var tracks []publishTrack
	var video, audio bool
	for i, m := range desc.Medias {
		if len(m.Formats) != 1 {
			return nil, fmt.Errorf("media %d offers %d formats; publish one H.264 or AAC format per media", i, len(m.Formats))
		}
		switch f := m.Formats[0].(type) {
		case *format.H264:
			if video {
				return nil, errors.New("more than one video media; publish one H.264 track")
			}
			if f.PacketizationMode >= 2 {
				return nil, fmt.Errorf("H.264 packetization-mode %d is not supported (use 0 or 1)", f.PacketizationMode)
			}
			video = true
			tracks = append(tracks, publishTrack{index: i, media: m, h264: f})
		case *format.MPEG4Audio:
			if audio {
				return nil, errors.New("more than one audio media; publish one AAC track")
			}
			if f.Config == nil {
				return nil, errors.New("AAC media without an AudioSpecificConfig (config=) in the SDP")
			}
			audio = true
			tracks = append(tracks, publishTrack{index: i, media: m, aac: f})
		case *format.MPEG4AudioLATM:
			if audio {
				return nil, errors.New("more than one audio media; publish one AAC track")
			}
			if f.CPresent || f.StreamMuxConfig == nil {
				return nil, errors.New("AAC in LATM with the configuration in-band (cpresent=1) is not supported: put it in the SDP (cpresent=0)")
			}
			if len(f.StreamMuxConfig.Programs) != 1 || len(f.StreamMuxConfig.Programs[0].Layers) != 1 {
				return nil, errors.New("AAC in LATM with more than one program or layer is not supported")
			}
			audio = true
			tracks = append(tracks, publishTrack{index: i, media: m, latm: f})
		default:
			return nil, fmt.Errorf("codec %s is not supported: publish H.264 video and AAC audio (MPEG4-GENERIC or MP4A-LATM)", f.Codec())
		}
	}
	return tracks, nil
}

// publishSession feeds one RTSP publisher's media into the hub.
type publishSession struct {
	s         *Server
	ss        *gortsplib.ServerSession
	app, name string
	tag       string // the authorisation's Tag, for PublishDone
	path      string
	addr      string
	pub       *stream.Publisher
	tracks    []publishTrack

	// mu serialises conversion and Publisher.Write: gortsplib may deliver
	// the tracks of one session from different goroutines.
	mu     sync.Mutex
	video  *h264Ingest
	vdec   *rtph264.Decoder
	audio  *aacIngest
	adec   *rtpmpeg4audio.Decoder
	ldec   *rtpfragmented.Decoder      // LATM: AudioMuxElements from packets
	lcfg   *mpeg4audio.StreamMuxConfig // LATM: the SDP's configuration
	closed bool
	ci     stream.CodecInfo
	// Video decoder bookkeeping: the previous packet's RTP timestamp and
	// PTS, and whether the decoder holds an unfinished access unit.
	vPrevTS  uint32
	vPrevPTS int64
	vPending bool

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

func (s *Server) newPublishSession(ss *gortsplib.ServerSession, pub *stream.Publisher, app, name, tag, addr string, tracks []publishTrack) (*publishSession, error) {
	p := &publishSession{s: s, ss: ss, app: app, name: name, tag: tag, path: app + "/" + name, addr: addr, pub: pub, tracks: tracks}
	var ci stream.CodecInfo
	for _, t := range tracks {
		switch {
		case t.h264 != nil:
			sps, pps := t.h264.SafeParams()
			p.video = newH264Ingest(sps, pps)
			dec, err := t.h264.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("H.264 decoder: %w", err)
			}
			p.vdec = dec
			ci.VideoCodec = "h264"
			if len(sps) > 0 {
				var sp h264.SPS
				if err := sp.Unmarshal(sps); err == nil {
					ci.Width, ci.Height = sp.Width(), sp.Height()
				}
			}
			p.flows = append(p.flows, &flow{track: strconv.Itoa(t.index), codec: "h264", clockRate: t.h264.ClockRate()})
		case t.aac != nil:
			in, err := newAACIngest(t.aac.Config)
			if err != nil {
				return nil, err
			}
			p.audio = in
			dec, err := t.aac.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("AAC decoder: %w", err)
			}
			p.adec = dec
			ci.AudioCodec = "aac"
			if ai, err := flv.ParseAudioSpecificConfig(in.asc); err == nil {
				ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
			}
			p.flows = append(p.flows, &flow{track: strconv.Itoa(t.index), codec: "aac", clockRate: t.aac.ClockRate()})
		case t.latm != nil:
			in, err := newAACIngest(t.latm.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig)
			if err != nil {
				return nil, err
			}
			p.audio = in
			dec, err := t.latm.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("LATM decoder: %w", err)
			}
			p.ldec, p.lcfg = dec, t.latm.StreamMuxConfig
			ci.AudioCodec = "aac"
			if ai, err := flv.ParseAudioSpecificConfig(in.asc); err == nil {
				ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
			}
			p.flows = append(p.flows, &flow{track: strconv.Itoa(t.index), codec: "aac-latm", clockRate: t.latm.ClockRate()})
		}
	}
	pub.SetCodecInfo(ci)
	p.ci = ci
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
	p.mu.Lock()
	var units []*stream.Unit
	if p.video != nil {
		h, err := p.video.header(0)
		if err != nil {
			p.mu.Unlock()
			return err
		}
		if h != nil {
			units = append(units, h)
		}
	}
	if p.audio != nil {
		units = append(units, p.audio.header(0))
	}
	p.writeLocked(units)
	p.mu.Unlock()

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
		handle := p.handler(t)
		p.ss.OnPacketRTP(medi, medi.Formats[0], func(pkt *pionrtp.Packet) {
			fl.update(pkt, time.Now())
			handle(medi, pkt)
		})
	}
	return nil
}

// onVideo depacketises one H.264 packet (in sequence order) into the hub.
func (p *publishSession) onVideo(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := p.ss.PacketPTS2(medi, pkt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	// The decoder completes an access unit on its marker packet, or, for
	// senders that set no marker, when the next timestamp begins: then the
	// unit belongs to the previous packet's time.
	tsChange := p.vPending && pkt.Timestamp != p.vPrevTS
	auPTS := pts
	if tsChange {
		auPTS = p.vPrevPTS
	}
	p.vPrevTS, p.vPrevPTS = pkt.Timestamp, pts
	au, err := p.vdec.Decode(pkt)
	// After a completion by timestamp change, this packet starts the next
	// buffered access unit.
	p.vPending = (err == nil && tsChange) || errors.Is(err, rtph264.ErrMorePacketsNeeded)
	if err != nil {
		if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			p.decodeError(err)
		}
		return
	}
	units, err := p.video.accessUnit(au, auPTS)
	if err != nil {
		p.decodeError(err)
		return
	}
	for _, u := range units {
		if u.Header {
			p.updateCodecInfoLocked()
		}
	}
	p.writeLocked(units)
}

// updateCodecInfoLocked tells the hub the picture size of the current SPS.
func (p *publishSession) updateCodecInfoLocked() {
	var sp h264.SPS
	if p.video.sps == nil || sp.Unmarshal(p.video.sps) != nil {
		return
	}
	if p.ci.Width == sp.Width() && p.ci.Height == sp.Height() {
		return
	}
	p.ci.Width, p.ci.Height = sp.Width(), sp.Height()
	p.pub.SetCodecInfo(p.ci)
}

// handler returns the depacketiser of a track.
func (p *publishSession) handler(t publishTrack) func(*description.Media, *pionrtp.Packet) {
	switch {
	case t.aac != nil:
		return p.onAudio
	case t.latm != nil:
		return p.onLATM
	}
	return p.onVideo
}

// onLATM depacketises one packet of AAC in LATM (in sequence order): each
// AudioMuxElement holds one or more AAC access units (subframes).
func (p *publishSession) onLATM(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := p.ss.PacketPTS2(medi, pkt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	el, err := p.ldec.Decode(pkt)
	if err != nil {
		if !errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
			p.decodeError(err)
		}
		return
	}
	ame := mpeg4audio.AudioMuxElement{StreamMuxConfig: p.lcfg}
	if err := ame.Unmarshal(el); err != nil {
		p.decodeError(fmt.Errorf("LATM AudioMuxElement: %w", err))
		return
	}
	aus := make([][]byte, 0, len(ame.Payloads))
	for _, sub := range ame.Payloads {
		if len(sub) > 0 && len(sub[0]) > 0 {
			aus = append(aus, sub[0][0])
		}
	}
	p.writeLocked(p.audio.accessUnits(aus, pts))
}

// onAudio depacketises one AAC packet (in sequence order) into the hub.
func (p *publishSession) onAudio(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := p.ss.PacketPTS2(medi, pkt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	aus, err := p.adec.Decode(pkt)
	if err != nil {
		if !errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
			p.decodeError(err)
		}
		return
	}
	p.writeLocked(p.audio.accessUnits(aus, pts))
}

// writeLocked hands units to the hub. A publisher closed under us (taken
// over, hub closing) ends the RTSP session.
func (p *publishSession) writeLocked(units []*stream.Unit) {
	for _, u := range units {
		if err := p.pub.Write(u); err != nil {
			if !p.closed {
				p.closed = true
				p.s.log.Info("rtsp publish ended by the hub", "path", p.path, "addr", p.addr, "err", err)
				go p.ss.Close()
			}
			return
		}
	}
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
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
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
