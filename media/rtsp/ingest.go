package rtsp

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// Track is one media of an SDP that the hub can take: H.264
// (packetization-mode 0 or 1), AAC (MPEG4-GENERIC) or AAC in LATM with the
// configuration in the SDP.
type Track struct {
	index int
	media *description.Media
	h264  *format.H264
	aac   *format.MPEG4Audio
	latm  *format.MPEG4AudioLATM // AAC in LATM (RFC 6416), config out of band
}

// Media is the track's media description.
func (t Track) Media() *description.Media { return t.media }

// PullTracks picks the tracks a pull source takes from a server's SDP: the
// first H.264 video and the first AAC audio. Other medias (a camera's
// metadata track, a second stream, another codec) are left out, so that
// what can play does; an SDP with neither is an error that names what was
// offered.
func PullTracks(desc *description.Session) ([]Track, error) {
	if desc == nil || len(desc.Medias) == 0 {
		return nil, errors.New("the SDP has no media")
	}
	var tracks []Track
	var video, audio bool
	var offered []string
	for i, m := range desc.Medias {
		for _, f := range m.Formats {
			offered = append(offered, f.Codec())
			t, kind, err := trackOf(i, m, f)
			if err != nil || (kind == "video" && video) || (kind == "audio" && audio) {
				continue
			}
			video, audio = video || kind == "video", audio || kind == "audio"
			// Set up this format only: gortsplib decodes by format.
			t.media = &description.Media{Type: m.Type, ID: m.ID, Control: m.Control, Formats: []format.Format{f}}
			tracks = append(tracks, t)
			break
		}
	}
	if len(tracks) == 0 {
		return nil, fmt.Errorf("no H.264 or AAC media in the SDP (offered: %v)", offered)
	}
	return tracks, nil
}

// trackOf checks one format; kind is "video" or "audio".
func trackOf(i int, m *description.Media, f format.Format) (Track, string, error) {
	switch f := f.(type) {
	case *format.H264:
		if f.PacketizationMode >= 2 {
			return Track{}, "", fmt.Errorf("H.264 packetization-mode %d is not supported (use 0 or 1)", f.PacketizationMode)
		}
		return Track{index: i, media: m, h264: f}, "video", nil
	case *format.MPEG4Audio:
		if f.Config == nil {
			return Track{}, "", errors.New("AAC media without an AudioSpecificConfig (config=) in the SDP")
		}
		return Track{index: i, media: m, aac: f}, "audio", nil
	case *format.MPEG4AudioLATM:
		if f.CPresent || f.StreamMuxConfig == nil {
			return Track{}, "", errors.New("AAC in LATM with the configuration in-band (cpresent=1) is not supported: put it in the SDP (cpresent=0)")
		}
		if len(f.StreamMuxConfig.Programs) != 1 || len(f.StreamMuxConfig.Programs[0].Layers) != 1 {
			return Track{}, "", errors.New("AAC in LATM with more than one program or layer is not supported")
		}
		return Track{index: i, media: m, latm: f}, "audio", nil
	}
	return Track{}, "", fmt.Errorf("codec %s is not supported: publish H.264 video and AAC audio (MPEG4-GENERIC or MP4A-LATM)", f.Codec())
}

// checkPublishMedias accepts at most one H.264 video and one AAC audio
// media, each with a single format, and refuses anything else with an
// error that names what was offered (an encoder should be told, not
// half-served).
func checkPublishMedias(desc *description.Session) ([]Track, error) {
	if desc == nil || len(desc.Medias) == 0 {
		return nil, errors.New("the SDP has no media")
	}
	var tracks []Track
	var video, audio bool
	for i, m := range desc.Medias {
		if len(m.Formats) != 1 {
			return nil, fmt.Errorf("media %d offers %d formats; publish one H.264 or AAC format per media", i, len(m.Formats))
		}
		t, kind, err := trackOf(i, m, m.Formats[0])
		switch {
		case err != nil:
			return nil, err
		case kind == "video" && video:
			return nil, errors.New("more than one video media; publish one H.264 track")
		case kind == "audio" && audio:
			return nil, errors.New("more than one audio media; publish one AAC track")
		}
		video, audio = video || kind == "video", audio || kind == "audio"
		tracks = append(tracks, t)
	}
	return tracks, nil
}

// IngestParams configures an Ingest.
type IngestParams struct {
	// Publisher receives the units. Required.
	Publisher *stream.Publisher
	// Tracks are the medias to take (checked by PullTracks or at ANNOUNCE).
	Tracks []Track
	// PTS returns a packet's presentation time in its clock rate's units
	// (gortsplib's PacketPTS2 of the session or client). Required.
	PTS func(*description.Media, *pionrtp.Packet) (int64, bool)
	// OnDecodeError is told of each malformed packet or access unit
	// (called under the ingest's lock: count, rate-limit, do not block).
	OnDecodeError func(error)
	// OnPublisherGone is called once, under the ingest's lock, when the
	// hub closed the publisher (taken over, hub closing): end the session
	// without waiting for it there.
	OnPublisherGone func(error)
}

// Ingest depacketises the RTP of one stream's tracks into hub units
// written to one Publisher. RTSP publishers (the server) and the RTSP pull
// source (a client) share it. Packets must come in sequence order (after
// a reorder buffer); a malformed packet is skipped, never fatal.
//
// Concurrency rule: mu serialises conversion and Publisher.Write, since
// gortsplib may deliver the tracks of one session from different
// goroutines; it is held across Publisher.Write (which never blocks: the
// hub drops for slow readers) and the two callbacks, nothing else.
type Ingest struct {
	p IngestParams

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
}

// NewIngest builds the decoders of p.Tracks and tells the hub the codecs.
func NewIngest(p IngestParams) (*Ingest, error) {
	if p.Publisher == nil || p.PTS == nil {
		return nil, errors.New("rtsp ingest: Publisher and PTS are required")
	}
	if p.OnDecodeError == nil {
		p.OnDecodeError = func(error) {}
	}
	if p.OnPublisherGone == nil {
		p.OnPublisherGone = func(error) {}
	}
	in := &Ingest{p: p}
	var ci stream.CodecInfo
	for _, t := range p.Tracks {
		switch {
		case t.h264 != nil:
			sps, pps := t.h264.SafeParams()
			in.video = newH264Ingest(sps, pps)
			dec, err := t.h264.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("H.264 decoder: %w", err)
			}
			in.vdec = dec
			ci.VideoCodec = "h264"
			if len(sps) > 0 {
				var sp h264.SPS
				if err := sp.Unmarshal(sps); err == nil {
					ci.Width, ci.Height = sp.Width(), sp.Height()
				}
			}
		case t.aac != nil:
			a, err := newAACIngest(t.aac.Config)
			if err != nil {
				return nil, err
			}
			in.audio = a
			dec, err := t.aac.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("AAC decoder: %w", err)
			}
			in.adec = dec
			ci.AudioCodec = "aac"
			if ai, err := flv.ParseAudioSpecificConfig(a.asc); err == nil {
				ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
			}
		case t.latm != nil:
			a, err := newAACIngest(t.latm.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig)
			if err != nil {
				return nil, err
			}
			in.audio = a
			dec, err := t.latm.CreateDecoder()
			if err != nil {
				return nil, fmt.Errorf("LATM decoder: %w", err)
			}
			in.ldec, in.lcfg = dec, t.latm.StreamMuxConfig
			ci.AudioCodec = "aac"
			if ai, err := flv.ParseAudioSpecificConfig(a.asc); err == nil {
				ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
			}
		}
	}
	p.Publisher.SetCodecInfo(ci)
	in.ci = ci
	return in, nil
}

// WriteHeaders writes the codec headers known from the SDP; call it once,
// before the first packet.
func (in *Ingest) WriteHeaders() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var units []*stream.Unit
	if in.video != nil {
		h, err := in.video.header(0)
		if err != nil {
			return err
		}
		if h != nil {
			units = append(units, h)
		}
	}
	if in.audio != nil {
		units = append(units, in.audio.header(0))
	}
	in.writeLocked(units)
	return nil
}

// Close stops the ingest: later packets are dropped. It does not close the
// publisher, which belongs to the caller.
func (in *Ingest) Close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
}

// Handler returns the depacketiser of track t.
func (in *Ingest) Handler(t Track) func(*description.Media, *pionrtp.Packet) {
	switch {
	case t.aac != nil:
		return in.onAudio
	case t.latm != nil:
		return in.onLATM
	}
	return in.onVideo
}

// newFlow returns empty statistics for track t.
func (t Track) newFlow() *flow {
	switch {
	case t.h264 != nil:
		return &flow{track: strconv.Itoa(t.index), codec: "h264", clockRate: t.h264.ClockRate()}
	case t.aac != nil:
		return &flow{track: strconv.Itoa(t.index), codec: "aac", clockRate: t.aac.ClockRate()}
	default:
		return &flow{track: strconv.Itoa(t.index), codec: "aac-latm", clockRate: t.latm.ClockRate()}
	}
}

// onVideo depacketises one H.264 packet (in sequence order) into the hub.
func (in *Ingest) onVideo(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := in.p.PTS(medi, pkt)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.video == nil {
		return
	}
	// The decoder completes an access unit on its marker packet, or, for
	// senders that set no marker, when the next timestamp begins: then the
	// unit belongs to the previous packet's time.
	tsChange := in.vPending && pkt.Timestamp != in.vPrevTS
	auPTS := pts
	if tsChange {
		auPTS = in.vPrevPTS
	}
	in.vPrevTS, in.vPrevPTS = pkt.Timestamp, pts
	au, err := in.vdec.Decode(pkt)
	// After a completion by timestamp change, this packet starts the next
	// buffered access unit.
	in.vPending = (err == nil && tsChange) || errors.Is(err, rtph264.ErrMorePacketsNeeded)
	if err != nil {
		if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			in.p.OnDecodeError(err)
		}
		return
	}
	units, err := in.video.accessUnit(au, auPTS)
	if err != nil {
		in.p.OnDecodeError(err)
		return
	}
	for _, u := range units {
		if u.Header {
			in.updateCodecInfoLocked()
		}
	}
	in.writeLocked(units)
}

// updateCodecInfoLocked tells the hub the picture size of the current SPS.
func (in *Ingest) updateCodecInfoLocked() {
	var sp h264.SPS
	if in.video.sps == nil || sp.Unmarshal(in.video.sps) != nil {
		return
	}
	if in.ci.Width == sp.Width() && in.ci.Height == sp.Height() {
		return
	}
	in.ci.Width, in.ci.Height = sp.Width(), sp.Height()
	in.p.Publisher.SetCodecInfo(in.ci)
}

// onLATM depacketises one packet of AAC in LATM (in sequence order): each
// AudioMuxElement holds one or more AAC access units (subframes).
func (in *Ingest) onLATM(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := in.p.PTS(medi, pkt)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.ldec == nil {
		return
	}
	el, err := in.ldec.Decode(pkt)
	if err != nil {
		if !errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
			in.p.OnDecodeError(err)
		}
		return
	}
	ame := mpeg4audio.AudioMuxElement{StreamMuxConfig: in.lcfg}
	if err := ame.Unmarshal(el); err != nil {
		in.p.OnDecodeError(fmt.Errorf("LATM AudioMuxElement: %w", err))
		return
	}
	aus := make([][]byte, 0, len(ame.Payloads))
	for _, sub := range ame.Payloads {
		if len(sub) > 0 && len(sub[0]) > 0 {
			aus = append(aus, sub[0][0])
		}
	}
	in.writeLocked(in.audio.accessUnits(aus, pts))
}

// onAudio depacketises one AAC packet (in sequence order) into the hub.
func (in *Ingest) onAudio(medi *description.Media, pkt *pionrtp.Packet) {
	pts, ok := in.p.PTS(medi, pkt)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.adec == nil {
		return
	}
	aus, err := in.adec.Decode(pkt)
	if err != nil {
		if !errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
			in.p.OnDecodeError(err)
		}
		return
	}
	in.writeLocked(in.audio.accessUnits(aus, pts))
}

// writeLocked hands units to the hub. A publisher closed under us (taken
// over, hub closing) closes the ingest and tells OnPublisherGone once.
func (in *Ingest) writeLocked(units []*stream.Unit) {
	for _, u := range units {
		if err := in.p.Publisher.Write(u); err != nil {
			if !in.closed {
				in.closed = true
				in.p.OnPublisherGone(err)
			}
			return
		}
	}
}
