package flv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// AVCConfig is a parsed AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1).
type AVCConfig struct {
	Profile        uint8
	Compatibility  uint8
	Level          uint8
	NALULengthSize int
	SPS            [][]byte
	PPS            [][]byte
}

// VideoInfo is what an SPS says about a stream.
type VideoInfo struct {
	Width, Height int
	Profile       uint8
	Level         uint8
	FPS           float64 // 0 when the SPS carries no timing information
}

// ParseAVCConfig parses an AVCDecoderConfigurationRecord (the Data of an
// AVC sequence header tag).
func ParseAVCConfig(b []byte) (*AVCConfig, error) {
	if len(b) < 6 || b[0] != 1 {
		return nil, errors.New("flv: not an AVCDecoderConfigurationRecord")
	}
	c := &AVCConfig{Profile: b[1], Compatibility: b[2], Level: b[3], NALULengthSize: int(b[4]&3) + 1}
	pos := 6
	read := func(count int) ([][]byte, error) {
		var out [][]byte
		for i := 0; i < count; i++ {
			if len(b)-pos < 2 {
				return nil, ErrShort
			}
			n := int(binary.BigEndian.Uint16(b[pos:]))
			pos += 2
			if len(b)-pos < n {
				return nil, ErrShort
			}
			out = append(out, b[pos:pos+n:pos+n])
			pos += n
		}
		return out, nil
	}
	var err error
	if c.SPS, err = read(int(b[5] & 0x1f)); err != nil {
		return nil, fmt.Errorf("flv: SPS: %w", err)
	}
	if pos >= len(b) {
		return nil, fmt.Errorf("flv: PPS count: %w", ErrShort)
	}
	ppsCount := int(b[pos])
	pos++
	if c.PPS, err = read(ppsCount); err != nil {
		return nil, fmt.Errorf("flv: PPS: %w", err)
	}
	if len(c.SPS) == 0 {
		return nil, errors.New("flv: AVCDecoderConfigurationRecord without SPS")
	}
	return c, nil
}

// VideoInfo decodes the first SPS.
func (c *AVCConfig) VideoInfo() (VideoInfo, error) {
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS[0]); err != nil {
		return VideoInfo{}, fmt.Errorf("flv: parse SPS: %w", err)
	}
	return VideoInfo{Width: sps.Width(), Height: sps.Height(), Profile: sps.ProfileIdc, Level: sps.LevelIdc, FPS: sps.FPS()}, nil
}

// BuildAVCConfig builds an AVCDecoderConfigurationRecord with 4-byte NAL
// unit lengths from SPS and PPS NAL units (without start codes).
func BuildAVCConfig(sps, pps [][]byte) ([]byte, error) {
	if len(sps) == 0 || len(sps) > 31 || len(pps) > 255 {
		return nil, fmt.Errorf("flv: need 1-31 SPS and at most 255 PPS, got %d and %d", len(sps), len(pps))
	}
	if len(sps[0]) < 4 {
		return nil, errors.New("flv: SPS too short")
	}
	b := []byte{1, sps[0][1], sps[0][2], sps[0][3], 0xfc | 3, 0xe0 | byte(len(sps))}
	for _, s := range sps {
		if len(s) > 0xffff {
			return nil, errors.New("flv: SPS too long")
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(len(pps)))
	for _, p := range pps {
		if len(p) > 0xffff {
			return nil, errors.New("flv: PPS too long")
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b, nil
}

// AVCSequenceHeader builds the body of an AVC sequence header video tag
// (keyframe, codec 7, packet type 0, CTS 0) from one SPS and one PPS.
func AVCSequenceHeader(sps, pps []byte) ([]byte, error) {
	rec, err := BuildAVCConfig([][]byte{sps}, [][]byte{pps})
	if err != nil {
		return nil, err
	}
	return AppendVideoTag(nil, VideoTag{FrameType: FrameKey, CodecID: CodecAVC, PacketType: PacketSequenceHeader, Data: rec}), nil
}

// SplitAVCC splits length-prefixed NAL units (lengthSize 1 to 4 bytes). The
// returned units alias b.
func SplitAVCC(b []byte, lengthSize int) ([][]byte, error) {
	if lengthSize < 1 || lengthSize > 4 {
		return nil, fmt.Errorf("flv: NAL unit length size %d", lengthSize)
	}
	var out [][]byte
	for len(b) > 0 {
		if len(b) < lengthSize {
			return nil, fmt.Errorf("flv: truncated NAL unit length: %w", ErrShort)
		}
		n := 0
		for i := 0; i < lengthSize; i++ {
			n = n<<8 | int(b[i])
		}
		b = b[lengthSize:]
		if n > len(b) {
			return nil, fmt.Errorf("flv: NAL unit of %d bytes with %d left: %w", n, len(b), ErrShort)
		}
		if len(out) >= h264.MaxNALUsPerAccessUnit {
			return nil, fmt.Errorf("flv: more than %d NAL units", h264.MaxNALUsPerAccessUnit)
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}

// AppendAVCC appends NAL units with 4-byte length prefixes.
func AppendAVCC(dst []byte, nalus ...[]byte) []byte {
	for _, n := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

var startCode = []byte{0, 0, 0, 1}

// AVCCToAnnexB converts length-prefixed NAL units to an Annex-B byte stream.
func AVCCToAnnexB(avcc []byte, lengthSize int) ([]byte, error) {
	nalus, err := SplitAVCC(avcc, lengthSize)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(avcc)+len(nalus)*4)
	for _, n := range nalus {
		out = append(out, startCode...)
		out = append(out, n...)
	}
	return out, nil
}

// AnnexBToAVCC converts an Annex-B byte stream to 4-byte length-prefixed NAL units.
func AnnexBToAVCC(annexb []byte) ([]byte, error) {
	var au h264.AnnexB
	if err := au.Unmarshal(annexb); err != nil {
		return nil, fmt.Errorf("flv: Annex-B: %w", err)
	}
	return AppendAVCC(make([]byte, 0, len(annexb)+4), au...), nil
}
