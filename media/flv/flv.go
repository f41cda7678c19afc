// Package flv parses and builds FLV tag bodies (the audio, video and script
// payloads RTMP carries) and FLV files. It is pure: no sockets, no clocks.
package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Tag types.
const (
	TagAudio  uint8 = 8
	TagVideo  uint8 = 9
	TagScript uint8 = 18
)

// Video frame types.
const (
	FrameKey        uint8 = 1
	FrameInter      uint8 = 2
	FrameDisposable uint8 = 3
	FrameGenerated  uint8 = 4
	FrameCommand    uint8 = 5
)

// Video codec ids.
const (
	CodecH263 uint8 = 2
	CodecVP6  uint8 = 4
	CodecAVC  uint8 = 7
	CodecHEVC uint8 = 12 // the widespread legacy extension, laid out like AVC
)

// AVC/HEVC packet types.
const (
	PacketSequenceHeader uint8 = 0
	PacketNALU           uint8 = 1
	PacketEndOfSequence  uint8 = 2
)

// Sound formats and AAC packet types.
const (
	SoundMP3 uint8 = 2
	SoundAAC uint8 = 10

	AACPacketSequenceHeader uint8 = 0
	AACPacketRaw            uint8 = 1
)

// ErrShort is returned for a tag body too short for its declared kind.
var ErrShort = errors.New("flv: tag body too short")

// VideoTag is a parsed video tag body.
type VideoTag struct {
	FrameType uint8
	CodecID   uint8 // 0 when ExHeader is set
	// ExHeader marks an Enhanced RTMP tag: FourCC names the codec and
	// PacketType is the enhanced packet type. The body is passed through.
	ExHeader bool
	FourCC   [4]byte
	// PacketType and CTS are set for AVC and HEVC (and ExHeader tags for
	// PacketType only). CTS is the composition time offset in milliseconds.
	PacketType uint8
	CTS        int32
	Data       []byte // the codec payload (AVCC NAL units, a configuration record...), aliasing the input
}

// Keyframe reports whether the tag starts a GOP.
func (v VideoTag) Keyframe() bool { return v.FrameType == FrameKey }

// SequenceHeader reports whether the tag carries codec configuration.
func (v VideoTag) SequenceHeader() bool {
	if v.ExHeader {
		return v.PacketType == PacketSequenceHeader
	}
	return (v.CodecID == CodecAVC || v.CodecID == CodecHEVC) && v.PacketType == PacketSequenceHeader
}

// ParseVideoTag parses a video tag body. Codecs other than AVC and HEVC are
// returned with Data holding everything after the first byte.
func ParseVideoTag(b []byte) (VideoTag, error) {
	if len(b) < 1 {
		return VideoTag{}, ErrShort
	}
	var v VideoTag
	if b[0]&0x80 != 0 {
		if len(b) < 5 {
			return VideoTag{}, ErrShort
		}
		v.ExHeader = true
		v.FrameType = (b[0] >> 4) & 0x07
		v.PacketType = b[0] & 0x0f
		copy(v.FourCC[:], b[1:5])
		v.Data = b[5:]
		return v, nil
	}
	v.FrameType = b[0] >> 4
	v.CodecID = b[0] & 0x0f
	if v.CodecID != CodecAVC && v.CodecID != CodecHEVC {
		v.Data = b[1:]
		return v, nil
	}
	if len(b) < 5 {
		return VideoTag{}, ErrShort
	}
	v.PacketType = b[1]
	cts := int32(b[2])<<16 | int32(b[3])<<8 | int32(b[4])
	v.CTS = cts << 8 >> 8 // sign-extend 24 bits
	v.Data = b[5:]
	return v, nil
}

// AppendVideoTag appends an AVC/HEVC (or other legacy codec) video tag body.
func AppendVideoTag(dst []byte, v VideoTag) []byte {
	if v.ExHeader {
		dst = append(dst, 0x80|(v.FrameType&0x07)<<4|v.PacketType&0x0f)
		dst = append(dst, v.FourCC[:]...)
		return append(dst, v.Data...)
	}
	dst = append(dst, v.FrameType<<4|v.CodecID&0x0f)
	if v.CodecID == CodecAVC || v.CodecID == CodecHEVC {
		c := uint32(v.CTS)
		dst = append(dst, v.PacketType, byte(c>>16), byte(c>>8), byte(c))
	}
	return append(dst, v.Data...)
}

// AudioTag is a parsed audio tag body.
type AudioTag struct {
	SoundFormat uint8
	SoundRate   uint8 // 0=5.5k 1=11k 2=22k 3=44k (AAC always says 3)
	SoundSize   uint8 // 0=8-bit 1=16-bit
	SoundType   uint8 // 0=mono 1=stereo
	// AACPacketType is set for AAC: AACPacketSequenceHeader or AACPacketRaw.
	AACPacketType uint8
	Data          []byte // aliasing the input
}

// SequenceHeader reports whether the tag is an AAC AudioSpecificConfig.
func (a AudioTag) SequenceHeader() bool {
	return a.SoundFormat == SoundAAC && a.AACPacketType == AACPacketSequenceHeader
}

// ParseAudioTag parses an audio tag body.
func ParseAudioTag(b []byte) (AudioTag, error) {
	if len(b) < 1 {
		return AudioTag{}, ErrShort
	}
	a := AudioTag{SoundFormat: b[0] >> 4, SoundRate: (b[0] >> 2) & 3, SoundSize: (b[0] >> 1) & 1, SoundType: b[0] & 1}
	if a.SoundFormat != SoundAAC {
		a.Data = b[1:]
		return a, nil
	}
	if len(b) < 2 {
		return AudioTag{}, ErrShort
	}
	a.AACPacketType = b[1]
	a.Data = b[2:]
	return a, nil
}

// AppendAudioTag appends an audio tag body.
func AppendAudioTag(dst []byte, a AudioTag) []byte {
	dst = append(dst, a.SoundFormat<<4|(a.SoundRate&3)<<2|(a.SoundSize&1)<<1|a.SoundType&1)
	if a.SoundFormat == SoundAAC {
		dst = append(dst, a.AACPacketType)
	}
	return append(dst, a.Data...)
}

// HeaderSize is the size of the FLV file header plus the first
// PreviousTagSize field.
const HeaderSize = 9 + 4

// AppendHeader appends the FLV file header and PreviousTagSize0.
func AppendHeader(dst []byte, audio, video bool) []byte {
	var flags byte
	if audio {
		flags |= 4
	}
	if video {
		flags |= 1
	}
	return append(dst, 'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0)
}

// ParseHeader parses an FLV file header and returns the offset of the first
// tag (after PreviousTagSize0).
func ParseHeader(b []byte) (audio, video bool, offset int, err error) {
	if len(b) < 9 || b[0] != 'F' || b[1] != 'L' || b[2] != 'V' {
		return false, false, 0, errors.New("flv: not an FLV header")
	}
	size := binary.BigEndian.Uint32(b[5:9])
	if size < 9 || size > 1<<16 {
		return false, false, 0, fmt.Errorf("flv: header size %d", size)
	}
	return b[4]&4 != 0, b[4]&1 != 0, int(size) + 4, nil
}

// AppendTag appends an FLV tag: the 11-byte tag header, payload and the
// PreviousTagSize field. ts is split into the 24-bit field and its
// extension byte. Payloads over 0xFFFFFF bytes cannot be represented and
// leave dst unchanged.
func AppendTag(dst []byte, tagType uint8, ts uint32, payload []byte) []byte {
	n := len(payload)
	if n > 0xffffff {
		return dst
	}
	dst = append(dst, tagType, byte(n>>16), byte(n>>8), byte(n),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, uint32(11+n))
}

// Tag is one FLV tag of a file.
type Tag struct {
	Type      uint8
	Timestamp uint32
	Payload   []byte
}

// ParseTag parses one tag (header, payload and PreviousTagSize) at the
// start of b and returns it with the number of bytes consumed. The payload
// aliases b.
func ParseTag(b []byte) (Tag, int, error) {
	if len(b) < 11 {
		return Tag{}, 0, ErrShort
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if len(b) < 11+n+4 {
		return Tag{}, 0, ErrShort
	}
	if b[0]&0x20 != 0 {
		return Tag{}, 0, errors.New("flv: encrypted tags are not supported")
	}
	t := Tag{
		Type:      b[0] & 0x1f,
		Timestamp: uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24,
		Payload:   b[11 : 11+n : 11+n],
	}
	if prev := binary.BigEndian.Uint32(b[11+n:]); prev != uint32(11+n) {
		return Tag{}, 0, fmt.Errorf("flv: PreviousTagSize %d, want %d", prev, 11+n)
	}
	return t, 11 + n + 4, nil
}

// Reader reads the tags of an FLV file.
type Reader struct {
	r       io.Reader
	maxTag  int
	started bool
}

// NewReader returns a Reader that rejects tags over maxTag bytes (0 means 16 MiB).
func NewReader(r io.Reader, maxTag int) *Reader {
	if maxTag <= 0 {
		maxTag = 16 << 20
	}
	return &Reader{r: r, maxTag: maxTag}
}

// Next returns the next tag; the payload is freshly allocated. It returns
// io.EOF at the end of the file.
func (fr *Reader) Next() (Tag, error) {
	if !fr.started {
		var h [9]byte
		if _, err := io.ReadFull(fr.r, h[:]); err != nil {
			return Tag{}, fmt.Errorf("flv header: %w", err)
		}
		_, _, off, err := ParseHeader(h[:])
		if err != nil {
			return Tag{}, err
		}
		if _, err := io.CopyN(io.Discard, fr.r, int64(off-9)); err != nil {
			return Tag{}, fmt.Errorf("flv header: %w", err)
		}
		fr.started = true
	}
	var h [11]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Tag{}, fmt.Errorf("flv: truncated tag header: %w", err)
		}
		return Tag{}, err
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > fr.maxTag {
		return Tag{}, fmt.Errorf("flv: tag of %d bytes exceeds the limit of %d", n, fr.maxTag)
	}
	buf := make([]byte, 11+n+4)
	copy(buf, h[:])
	if _, err := io.ReadFull(fr.r, buf[11:]); err != nil {
		return Tag{}, fmt.Errorf("flv: truncated tag: %w", err)
	}
	t, _, err := ParseTag(buf)
	return t, err
}

// Classify reports, without allocating, whether a tag body starts a GOP
// (a video keyframe that is not a sequence header) and whether it is codec
// configuration or metadata (AVC/HEVC/enhanced sequence header, AAC
// AudioSpecificConfig, script data). Malformed bodies are neither.
func Classify(tagType uint8, payload []byte) (key, header bool) {
	switch tagType {
	case TagVideo:
		v, err := ParseVideoTag(payload)
		if err != nil {
			return false, false
		}
		if v.SequenceHeader() {
			return false, true
		}
		return v.Keyframe() && (v.ExHeader || v.CodecID != CodecAVC && v.CodecID != CodecHEVC || v.PacketType == PacketNALU), false
	case TagAudio:
		a, err := ParseAudioTag(payload)
		return false, err == nil && a.SequenceHeader()
	case TagScript:
		return false, true
	}
	return false, false
}
