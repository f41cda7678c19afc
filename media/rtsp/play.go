package rtsp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// outStream is the fan-out of one hub stream to its RTSP players: one hub
// reader, one packetiser, one gortsplib ServerStream that writes each RTP
// packet, marshalled once, to every player's own bounded queue. Players
// join at the next IDR, which always carries SPS and PPS in-band.
//
// Its session set, closing flag and idle generation are guarded by
// Server.mu; the rest is owned by the pump goroutine once ready is closed.
type outStream struct {
	s    *Server
	path string

	ready chan struct{} // closed once prepare finished (st or err set)
	err   error
	st    *gortsplib.ServerStream

	ctx    context.Context
	cancel context.CancelFunc
	reader *stream.Reader
	queued []*stream.Unit // read while preparing, written first

	video     *description.Media
	venc      *rtph264.Encoder
	vconv     h264Egress
	vbase     uint32
	vclock    frameClock // exact 90 kHz times from the hub's milliseconds
	audio     *description.Media
	aenc      *rtpmpeg4audio.Encoder
	aconv     aacEgress
	abase     uint32
	audioRate int64
	aNext     uint32 // RTP timestamp the next AAC access unit should have
	aSet      bool
	skipAudio bool // the stream's audio is not AAC: left out of the SDP
	// ntpStart is the wall-clock time of hub time ntpBase (ms), both set
	// by the first unit written, for the NTP times of RTCP sender reports.
	ntpStart time.Time
	ntpBase  int64
	ntpSet   bool

	// setupMu is held from the end of a player's SETUP handler until
	// gortsplib has answered it (handler.holdSetup, OnResponse).
	setupMu sync.Mutex

	// Guarded by Server.mu.
	sessions map[*gortsplib.ServerSession]struct{}
	playing  map[*gortsplib.ServerSession]struct{} // sessions past PLAY
	leftOut  uint64                                // bytes sent to players that left
	closing  bool
	drained  chan struct{} // closed when closing and the last session left
	idleGen  uint64
}

var (
	errNoMedia = errors.New("no media yet: the stream sent no keyframe in time")
	errIdle    = errors.New("no players")
)

// playOut returns the ready fan-out of path, preparing it if needed.
func (s *Server) playOut(path string) (*outStream, error) {
	s.mu.Lock()
	if s.closed || s.srv == nil {
		s.mu.Unlock()
		return nil, errServerClosed
	}
	o := s.outs[path]
	if o != nil {
		s.mu.Unlock()
		select {
		case <-o.ready:
		case <-time.After(s.p.PlayWait + stream.DefaultOnDemandWait + time.Second):
			return nil, fmt.Errorf("%s: %w", path, errNoMedia)
		}
		if o.err != nil {
			return nil, o.err
		}
		return o, nil
	}
	o = &outStream{s: s, path: path, ready: make(chan struct{}), sessions: map[*gortsplib.ServerSession]struct{}{},
		playing: map[*gortsplib.ServerSession]struct{}{}, drained: make(chan struct{})}
	o.ctx, o.cancel = context.WithCancel(s.ctx)
	s.outs[path] = o
	s.mu.Unlock()

	o.err = o.prepare()
	close(o.ready)
	if o.err != nil {
		o.cancel()
		s.mu.Lock()
		if s.outs[path] == o {
			delete(s.outs, path)
		}
		s.mu.Unlock()
		return nil, o.err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		o.close(errServerClosed)
		return nil, errServerClosed
	}
	s.startIdleLocked(o)
	s.live[o] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go o.pump()
	s.log.Info("rtsp play fan-out started", "path", path, "video", o.video != nil, "audio", o.audio != nil)
	return o, nil
}

// prepare opens the hub reader, reads up to the first media unit to learn
// the codec headers, and builds the SDP and the ServerStream.
func (o *outStream) prepare() error {
	s := o.s
	r, err := s.p.Hub.Read(o.ctx, o.path, stream.ReaderParams{})
	if err != nil {
		return err
	}
	o.reader = r
	ctx, cancel := context.WithTimeout(o.ctx, s.p.PlayWait)
	defer cancel()
	var asc []byte
	var haveVideo bool
	for media := false; !media; {
		units, err := r.Next(ctx)
		if err != nil {
			r.Close()
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w", o.path, errNoMedia)
			}
			return fmt.Errorf("%s: %w", o.path, err)
		}
		for _, u := range units {
			o.queued = append(o.queued, u)
			if media || !u.Header {
				media = true
				continue
			}
			switch u.Kind {
			case stream.KindVideo:
				v, err := flv.ParseVideoTag(u.Payload)
				if err != nil || v.ExHeader || v.CodecID != flv.CodecAVC {
					r.Close()
					return fmt.Errorf("video of %s is not H.264: %w", o.path, errUnsupported)
				}
				if err := o.vconv.setHeader(v.Data); err != nil {
					r.Close()
					return fmt.Errorf("H.264 configuration of %s: %w", o.path, err)
				}
				haveVideo = true
			case stream.KindAudio:
				a, err := flv.ParseAudioTag(u.Payload)
				if err == nil && a.SoundFormat == flv.SoundAAC {
					asc = append([]byte(nil), a.Data...)
				}
			}
		}
	}
	if !haveVideo && asc == nil {
		r.Close()
		return fmt.Errorf("%s has neither H.264 nor AAC headers: %w", o.path, errUnsupported)
	}
	// Audio RTSP cannot carry here (MP3, Speex, ...) is left out; the
	// video still plays.
	o.skipAudio = asc == nil
	if err := o.build(haveVideo, asc); err != nil {
		r.Close()
		return err
	}
	return nil
}

// build creates the media descriptions, encoders and the ServerStream.
func (o *outStream) build(haveVideo bool, asc []byte) error {
	desc := &description.Session{Title: "Portier"}
	if haveVideo {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: o.vconv.sps, PPS: o.vconv.pps}
		enc, err := f.CreateEncoder()
		if err != nil {
			return fmt.Errorf("H.264 encoder: %w", err)
		}
		o.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
		o.venc, o.vbase = enc, randUint32()
		desc.Medias = append(desc.Medias, o.video)
	}
	if asc != nil {
		var cfg mpeg4audio.AudioSpecificConfig
		if err := cfg.Unmarshal(asc); err != nil {
			return fmt.Errorf("AAC configuration of %s: %w", o.path, err)
		}
		f := &format.MPEG4Audio{PayloadTyp: 97, ProfileLevelID: 1, Config: &cfg, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		enc, err := f.CreateEncoder()
		if err != nil {
			return fmt.Errorf("AAC encoder: %w", err)
		}
		o.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}
		o.aenc, o.abase, o.audioRate = enc, randUint32(), int64(cfg.SampleRate)
		o.aconv.asc = asc
		desc.Medias = append(desc.Medias, o.audio)
	}
	st := &gortsplib.ServerStream{Server: o.s.srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		return fmt.Errorf("RTSP stream: %w", err)
	}
	o.st = st
	return nil
}

// pump moves units from the hub to the players until the stream ends, the
// codec configuration changes, or the fan-out is closed.
func (o *outStream) pump() {
	defer o.s.wg.Done()
	err := o.writeUnits(o.queued)
	o.queued = nil
	for err == nil {
		var units []*stream.Unit
		units, err = o.reader.Next(o.ctx)
		if err == nil {
			err = o.writeUnits(units)
		}
	}
	o.close(err)
}

func (o *outStream) writeUnits(units []*stream.Unit) error {
	for _, u := range units {
		var err error
		switch u.Kind {
		case stream.KindVideo:
			err = o.writeVideo(u)
		case stream.KindAudio:
			err = o.writeAudio(u)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *outStream) writeVideo(u *stream.Unit) error {
	if o.video == nil {
		if u.Header {
			return fmt.Errorf("video appeared: %w", errConfigChanged)
		}
		return nil
	}
	au, pts, ok, err := o.vconv.accessUnit(u)
	if err != nil || !ok {
		if errors.Is(err, errUnsupported) {
			return err
		}
		return nil // a malformed unit is skipped
	}
	pkts, err := o.venc.Encode(au)
	if err != nil {
		return nil
	}
	ts := o.vbase + uint32(o.vclock.ticks(pts))
	ntp := o.ntp(pts)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
		if err := o.st.WritePacketRTPWithNTP(o.video, pkt, ntp); err != nil {
			return err
		}
	}
	return nil
}

func (o *outStream) writeAudio(u *stream.Unit) error {
	if o.skipAudio && !(u.Header && isAAC(u.Payload)) {
		return nil
	}
	if o.audio == nil {
		if u.Header {
			return fmt.Errorf("audio appeared: %w", errConfigChanged)
		}
		return nil
	}
	au, ok, err := o.aconv.accessUnit(u)
	if err != nil {
		if errors.Is(err, errUnsupported) || errors.Is(err, errConfigChanged) {
			return err
		}
		return nil
	}
	if !ok {
		return nil
	}
	pkts, err := o.aenc.Encode([][]byte{au})
	if err != nil {
		return nil
	}
	base := o.audioTimestamp(u.DTS)
	ntp := o.ntp(u.DTS)
	for _, pkt := range pkts {
		pkt.Timestamp += base
		if err := o.st.WritePacketRTPWithNTP(o.audio, pkt, ntp); err != nil {
			return err
		}
	}
	return nil
}

// audioTimestamp returns the RTP timestamp of the AAC access unit at hub
// time dtsMs. The hub keeps milliseconds, so converting each unit alone
// steps 1014-1059 samples instead of 1024; an access unit that follows the
// previous one within the rounding (2 ms) gets exactly the previous
// timestamp plus 1024 samples. A gap or jump resynchronises on the hub's
// time.
func (o *outStream) audioTimestamp(dtsMs int64) uint32 {
	raw := o.abase + uint32(dtsMs*o.audioRate/1000)
	ts := raw
	if o.aSet {
		if d := int64(int32(raw - o.aNext)); d >= -2*o.audioRate/1000 && d <= 2*o.audioRate/1000 {
			ts = o.aNext
		}
	}
	o.aNext, o.aSet = ts+mpeg4audio.SamplesPerAccessUnit, true
	return ts
}

func isAAC(payload []byte) bool {
	a, err := flv.ParseAudioTag(payload)
	return err == nil && a.SoundFormat == flv.SoundAAC
}

// ntp maps a hub time (ms) to wall-clock time.
func (o *outStream) ntp(ms int64) time.Time {
	if !o.ntpSet {
		o.ntpSet, o.ntpStart, o.ntpBase = true, time.Now(), ms
	}
	return o.ntpStart.Add(time.Duration(ms-o.ntpBase) * time.Millisecond)
}

// acquirePlayer counts ss as a player of o; false if o is closing.
func (s *Server) acquirePlayer(o *outStream, ss *gortsplib.ServerSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.closing {
		return false
	}
	o.sessions[ss] = struct{}{}
	o.idleGen++ // cancels a pending idle close
	return true
}

// markPlaying counts ss's bytes from now on (after PLAY gortsplib no
// longer changes the session's media set, so reading them is safe).
func (s *Server) markPlaying(o *outStream, ss *gortsplib.ServerSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := o.sessions[ss]; ok {
		o.playing[ss] = struct{}{}
	}
}

// releasePlayer forgets ss; the last player to leave starts the idle
// timer. It runs on ss's goroutine, which owns its byte counters.
func (s *Server) releasePlayer(o *outStream, ss *gortsplib.ServerSession) {
	sent := ss.BytesSent()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := o.sessions[ss]; !ok {
		return
	}
	delete(o.sessions, ss)
	if _, ok := o.playing[ss]; ok {
		delete(o.playing, ss)
		o.leftOut += sent
		s.doneOut += sent
	}
	if len(o.sessions) > 0 {
		return
	}
	if o.closing {
		close(o.drained)
		return
	}
	s.startIdleLocked(o)
}

func (s *Server) startIdleLocked(o *outStream) {
	o.idleGen++
	gen := o.idleGen
	time.AfterFunc(s.p.PlayIdle, func() {
		s.mu.Lock()
		idle := o.idleGen == gen && len(o.sessions) == 0 && !o.closing
		s.mu.Unlock()
		if idle {
			o.close(errIdle)
		}
	})
}

// close ends the fan-out: no new players, the hub reader closed, every
// player's session closed, then the ServerStream (once its readers are
// gone, as gortsplib's Close walks them without its lock).
func (o *outStream) close(reason error) {
	s := o.s
	s.mu.Lock()
	if o.closing {
		s.mu.Unlock()
		return
	}
	o.closing = true
	if s.outs[o.path] == o {
		delete(s.outs, o.path)
	}
	sessions := make([]*gortsplib.ServerSession, 0, len(o.sessions))
	for ss := range o.sessions {
		sessions = append(sessions, ss)
	}
	if len(sessions) == 0 {
		close(o.drained)
	}
	s.mu.Unlock()

	o.cancel()
	if o.reader != nil {
		o.reader.Close()
		// The hub reader's bytes leave the live count and join the
		// done count at once, so the totals never go back.
		s.mu.Lock()
		if _, ok := s.live[o]; ok {
			delete(s.live, o)
			s.doneHub += o.reader.BytesOut()
		}
		s.mu.Unlock()
	}
	for _, ss := range sessions {
		ss.Close()
	}
	select {
	case <-o.drained:
	case <-time.After(5 * time.Second):
		s.log.Warn("rtsp players did not leave in time", "path", o.path)
	}
	if o.st != nil {
		o.st.Close()
	}
	s.log.Info("rtsp play fan-out ended", "path", o.path, "players", len(sessions), "reason", reason)
}

func randUint32() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint32(time.Now().UnixNano())
	}
	return binary.BigEndian.Uint32(b[:])
}
