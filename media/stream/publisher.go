package stream

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// PublisherInfo describes who publishes a stream.
type PublisherInfo struct {
	RemoteAddr string
	Protocol   string    // "rtmp", "rtsp", "edge-pull", ...
	Start      time.Time // set by Publish when zero
	// Takeover asks Publish to replace a live publisher instead of failing.
	Takeover bool
	// Tag is opaque to the hub: whoever authorised the publish names it
	// here (a relay puts the control plane's stream and publish ids), to
	// end exactly this publish later (EndPublish).
	Tag string
	// Encoder is the publisher's software as it names itself (an RTMP
	// connect's flashVer, then its onMetaData "encoder"; an RTSP
	// User-Agent), cleaned by CleanEncoder; empty when it said nothing.
	Encoder string
}

// maxEncoderLen bounds an encoder name: it comes from the publisher.
const maxEncoderLen = 128

// CleanEncoder makes a publisher-supplied software name safe to keep and
// show: control characters dropped, spaces trimmed, at most 128 bytes
// (cut at a rune boundary).
func CleanEncoder(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxEncoderLen {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// CodecInfo is what the publisher side learned from the codec headers.
type CodecInfo struct {
	VideoCodec string `json:"video_codec,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	AudioCodec string `json:"audio_codec,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
	Channels   int    `json:"channels,omitempty"`
}

// stream is one path's state. Control fields are guarded by Hub.mu; writer
// fields by wmu; the rest are atomics.
type stream struct {
	hub  *Hub
	path string

	// Writer state. wmu is taken only by Publisher.Write, so it is
	// uncontended except while a taken-over publisher finishes its last
	// write; readers never take it.
	wmu     sync.Mutex
	seq     uint64
	lastDTS int64
	haveDTS bool
	rate    rateMeter
	fps     fpsMeter
	gop     gopMeter

	snap    atomic.Pointer[snapshot]
	readers atomic.Pointer[[]*Reader] // copy-on-write under Hub.mu

	// Units held back for ReaderParams.CoalesceFrames are released when
	// the publisher has been quiet for CoalesceWait: one timer for the
	// stream, armed by Write, rather than one per waiting reader.
	lastWrite    atomic.Int64 // monoSince of the last Write
	releaseArmed atomic.Bool
	releaseTimer *time.Timer // made stopped with the stream; armed only when releaseArmed turns true

	// Control state, guarded by Hub.mu.
	pub           *Publisher
	info          PublisherInfo
	hadPublisher  bool
	arrived       chan struct{} // closed when a publisher attaches
	graceTimer    *time.Timer
	graceGen      uint64
	source        Source
	sourcePending bool
	idleGen       uint64
	removed       bool

	codec                           atomic.Pointer[CodecInfo]
	bytesIn, bytesOut, skips, drops atomic.Uint64
}

// snapshot is what a new or resuming reader starts from. It is immutable
// once stored; gop only ever grows at its end or is replaced, so earlier
// snapshots sharing its backing array stay valid.
type snapshot struct {
	meta, video, audio *Unit
	gop                []*Unit
	gopBytes           int
	gopOK              bool // gop starts at a keyframe (or is an audio window)
	hasVideo           bool
	seq                uint64 // seq of the last unit written
}

func (s *stream) readerCount() int { return len(*s.readers.Load()) }

func (s *stream) internalReaderCount() int {
	n := 0
	for _, r := range *s.readers.Load() {
		if r.p.Internal {
			n++
		}
	}
	return n
}

func (s *stream) addReaderLocked(r *Reader) {
	old := *s.readers.Load()
	list := make([]*Reader, len(old), len(old)+1)
	copy(list, old)
	list = append(list, r)
	s.readers.Store(&list)
	s.idleGen++ // cancels a pending idle close
}

func (s *stream) removeReaderLocked(r *Reader) bool {
	old := *s.readers.Load()
	for i, x := range old {
		if x == r {
			list := make([]*Reader, 0, len(old)-1)
			list = append(list, old[:i]...)
			list = append(list, old[i+1:]...)
			s.readers.Store(&list)
			return true
		}
	}
	return false
}

func (s *stream) needSourceLocked() bool {
	if s.pub != nil || s.source != nil || s.sourcePending || s.hub.params.OnDemand == nil || s.removed {
		return false
	}
	s.sourcePending = true
	return true
}

func (s *stream) startIdleLocked() {
	s.idleGen++
	gen := s.idleGen
	time.AfterFunc(s.hub.params.IdleTimeout, func() { s.hub.idleExpired(s, gen) })
}

// Publisher feeds one stream. Write must not be called concurrently with
// itself; Close may be called from any goroutine.
type Publisher struct {
	s       *stream
	info    PublisherInfo
	follows bool // another publisher came before on this stream: rebase DTS

	closed   atomic.Bool
	done     chan struct{}
	doneOnce sync.Once

	// Owned by Write (under s.wmu).
	started bool
	offset  int64
}

// Path returns the stream path this publisher feeds.
func (p *Publisher) Path() string { return p.s.path }

// Done is closed when the publisher is closed, taken over, or the hub closes.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// SetCodecInfo records codec information for stats.
func (p *Publisher) SetCodecInfo(ci CodecInfo) {
	if !p.closed.Load() {
		p.s.codec.Store(&ci)
	}
}

// SetEncoder replaces the publisher's software name (PublisherInfo.Encoder;
// an RTMP publisher's onMetaData names it better than its connect did).
// name is cleaned with CleanEncoder; an empty result changes nothing.
func (p *Publisher) SetEncoder(name string) {
	name = CleanEncoder(name)
	if name == "" {
		return
	}
	h := p.s.hub
	h.mu.Lock()
	if p.s.pub == p {
		p.s.info.Encoder = name
	}
	h.mu.Unlock()
}

// Close detaches the publisher. Readers wait up to the grace time for a new
// one. Close is idempotent.
func (p *Publisher) Close() {
	p.closed.Store(true)
	p.s.hub.publisherClosed(p)
	p.closeDone()
}

func (p *Publisher) closeDone() { p.doneOnce.Do(func() { close(p.done) }) }

// Write appends u to the stream and to every reader's queue without waiting
// for any reader. Write takes ownership of u: the caller must not modify it
// afterwards. It returns ErrClosed once the publisher was closed or taken
// over. A publisher that follows another on the same stream (takeover or a
// reconnect within the grace time) has its timestamps rebased so that DTS
// stays monotonic for readers.
func (p *Publisher) Write(u *Unit) error {
	s := p.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	prev := s.snap.Load()
	if !p.started {
		p.started = true
		if p.follows && s.haveDTS {
			p.offset = s.lastDTS + 1 - u.DTS
		}
		if p.follows {
			// Readers resume at the new publisher's first keyframe.
			cp := *prev
			cp.gop, cp.gopBytes, cp.gopOK = nil, 0, false
			prev = &cp
		}
		s.gop.reset()
	}
	u.DTS += p.offset
	if !s.haveDTS || u.DTS > s.lastDTS {
		s.lastDTS = u.DTS
	}
	s.haveDTS = true
	s.seq++
	u.seq = s.seq

	next := s.nextSnapshot(prev, u)
	s.snap.Store(next)

	// Readers with ReaderParams.Direct are handed their batches here
	// until DirectBudget is spent; the clock is read every few Direct
	// calls only.
	start := time.Now()
	direct, calls := true, 0
	for _, r := range *s.readers.Load() {
		if r.push(u, next, direct) {
			if calls++; calls%16 == 0 && time.Since(start) > DirectBudget {
				direct = false
			}
		}
	}

	n := uint64(len(u.Payload))
	s.bytesIn.Add(n)
	s.hub.totals.bytesIn.Add(n)
	now := start
	if calls > 0 {
		now = time.Now()
	}
	s.rate.add(n, now)
	if u.Kind == KindVideo && !u.Header {
		s.fps.add(u.DTS)
		s.gop.add(u.DTS, u.Key)
	}
	// After the pushes: releaseHeld clears releaseArmed before it looks at
	// the queues, so a unit pushed here is either seen by a running release
	// or arms the next one.
	s.lastWrite.Store(monoSince(now))
	if s.releaseArmed.CompareAndSwap(false, true) {
		s.releaseTimer.Reset(CoalesceWait)
	}
	return nil
}

// monoStart anchors monoSince: monotonic instants as int64 for atomics.
var monoStart = time.Now()

func monoSince(t time.Time) int64 { return int64(t.Sub(monoStart)) }

// releaseHeld runs CoalesceWait after the first Write that armed it: while
// the publisher keeps writing it only re-arms for the rest of the quiet
// period; once the publisher has been quiet for CoalesceWait, every reader
// gets what it holds and wakes at once for the next unit.
func (s *stream) releaseHeld() {
	if rest := CoalesceWait - time.Duration(monoSince(time.Now())-s.lastWrite.Load()); rest > 0 {
		s.releaseTimer.Reset(rest)
		return
	}
	s.releaseArmed.Store(false)
	for _, r := range *s.readers.Load() {
		r.release()
	}
}

func (s *stream) nextSnapshot(prev *snapshot, u *Unit) *snapshot {
	n := *prev
	n.seq = u.seq
	params := &s.hub.params
	if u.Kind == KindVideo && !n.hasVideo {
		// The audio window of a stream that turns out to have video is
		// no place to start from: wait for a keyframe.
		n.hasVideo = true
		n.gop, n.gopBytes, n.gopOK = nil, 0, false
	}
	if u.Header {
		switch u.Kind {
		case KindVideo:
			n.video = u
		case KindAudio:
			n.audio = u
		default:
			n.meta = u
		}
		return &n
	}
	switch {
	case u.Kind == KindVideo && u.Key:
		n.gop = make([]*Unit, 1, 64)
		n.gop[0] = u
		n.gopBytes = len(u.Payload)
		n.gopOK = true
	case !n.hasVideo:
		// Audio-only: a short sliding window.
		if !n.gopOK {
			n.gop, n.gopBytes = nil, 0
		}
		n.gopOK = true
		if len(n.gop) >= params.AudioWindow {
			n.gopBytes -= len(n.gop[0].Payload)
			n.gop = n.gop[1:]
		}
		n.gop = append(n.gop, u)
		n.gopBytes += len(u.Payload)
	case n.gopOK:
		if len(n.gop) >= params.MaxGOPUnits || n.gopBytes+len(u.Payload) > params.MaxGOPBytes {
			n.gop, n.gopBytes, n.gopOK = nil, 0, false
			break
		}
		n.gop = append(n.gop, u)
		n.gopBytes += len(u.Payload)
	}
	return &n
}

// rateMeter keeps a moving bitrate, updated by the single writer.
type rateMeter struct {
	start time.Time
	bytes uint64
	bps   atomic.Uint64
}

func (m *rateMeter) add(n uint64, now time.Time) {
	if m.start.IsZero() {
		m.start = now
	}
	m.bytes += n
	el := now.Sub(m.start)
	if el < time.Second {
		return
	}
	inst := uint64(float64(m.bytes*8) / el.Seconds())
	if prev := m.bps.Load(); prev != 0 {
		inst = (prev + inst) / 2
	}
	m.bps.Store(inst)
	m.start, m.bytes = now, 0
}

// fpsMeter measures the video frame rate from the frames' DTS (media time,
// so a publisher that sends in bursts still reads right), updated by the
// single writer over windows of at least one second.
type fpsMeter struct {
	first  int64
	frames int
	centi  atomic.Uint64 // frames per second × 100
}

func (m *fpsMeter) add(dts int64) {
	if m.frames == 0 || dts < m.first {
		m.first, m.frames = dts, 1
		return
	}
	m.frames++
	span := dts - m.first
	if span < 1000 {
		return
	}
	m.centi.Store(uint64((m.frames-1)*100_000) / uint64(span))
	m.first, m.frames = dts, 1
}

// get returns the last measured rate, rounded to 0.01 fps.
func (m *fpsMeter) get() float64 { return float64(m.centi.Load()) / 100 }

// gopMeter measures the keyframe interval from the video frames' DTS
// (media time) and counts the frames of each GOP, updated by the single
// writer; the last complete GOP is readable from any goroutine.
type gopMeter struct {
	lastKey int64
	haveKey bool
	frames  int
	// last packs the last complete GOP: its duration in milliseconds
	// (upper 40 bits) and its frames (lower 24 bits), one atomic so a
	// reader never sees the duration of one GOP with the frames of another.
	last atomic.Uint64
}

// maxGOPMillis bounds a measured GOP: a longer gap between keyframes is a
// timestamp jump or a paused publisher, not a GOP.
const maxGOPMillis = 10 * 60 * 1000

func (m *gopMeter) reset() {
	m.haveKey, m.frames = false, 0
	m.last.Store(0)
}

func (m *gopMeter) add(dts int64, key bool) {
	if !key {
		if m.haveKey {
			m.frames++
		}
		return
	}
	if m.haveKey {
		if span := dts - m.lastKey; span > 0 && span <= maxGOPMillis && m.frames < 1<<24 {
			m.last.Store(uint64(span)<<24 | uint64(m.frames))
		}
	}
	m.lastKey, m.haveKey, m.frames = dts, true, 1
}

// get returns the last complete GOP's duration in milliseconds and frames (0, 0 before
// two keyframes went through).
func (m *gopMeter) get() (millis int64, frames int) {
	v := m.last.Load()
	return int64(v >> 24), int(v & (1<<24 - 1))
}
