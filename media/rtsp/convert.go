package rtsp

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// This file converts between RTSP access units and the hub's FLV tag
// bodies. It holds no sockets and no clocks.
//
// Timestamps. RTSP carries only presentation times. For H.264 the decode
// time is derived once, at ingest, with mediacommon's DTS extractor (from
// the SPS and picture order counts): for streams without B-frames it
// returns DTS = PTS, so the FLV composition offset (CTS) is 0; for streams
// with B-frames CTS = PTS - DTS. If the extractor cannot follow a stream,
// DTS falls back to PTS, kept monotonic, with CTS 0, until the next IDR
// restarts the extractor. Readers of the hub never re-derive timestamps.

// ptsToMs converts a timestamp in clockRate units to milliseconds.
func ptsToMs(v int64, clockRate int) int64 {
	return v * 1000 / int64(clockRate)
}

// h264Ingest turns H.264 access units into hub units.
type h264Ingest struct {
	sps, pps   []byte
	headerSent bool
	dts        h264.DTSExtractor
	dtsBroken  bool
	haveDTS    bool
	lastDTS    int64 // 90 kHz
}

func newH264Ingest(sps, pps []byte) *h264Ingest {
	c := &h264Ingest{sps: sps, pps: pps}
	c.dts.Initialize()
	return c
}

// header returns the AVC sequence header unit for the current SPS/PPS.
func (c *h264Ingest) header(dtsMs int64) (*stream.Unit, error) {
	if c.sps == nil || c.pps == nil {
		return nil, nil
	}
	body, err := flv.AVCSequenceHeader(c.sps, c.pps)
	if err != nil {
		return nil, fmt.Errorf("AVC sequence header: %w", err)
	}
	c.headerSent = true
	return &stream.Unit{Kind: stream.KindVideo, DTS: dtsMs, Key: true, Header: true, Payload: body}, nil
}

// accessUnit converts one access unit with presentation time pts (90 kHz)
// into hub units: a new sequence header when in-band SPS/PPS change, then
// the frame. Frames before the first SPS/PPS are dropped (undecodable).
func (c *h264Ingest) accessUnit(au [][]byte, pts int64) ([]*stream.Unit, error) {
	nalus := make([][]byte, 0, len(au))
	changed := false
	key := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if !bytes.Equal(n, c.sps) {
				c.sps, changed = bytes.Clone(n), true
			}
			continue
		case h264.NALUTypePPS:
			if !bytes.Equal(n, c.pps) {
				c.pps, changed = bytes.Clone(n), true
			}
			continue
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		case h264.NALUTypeIDR:
			key = true
		}
		nalus = append(nalus, n)
	}
	var out []*stream.Unit
	dts := c.decodeTime(nalus, pts, key)
	dtsMs := ptsToMs(dts, 90000)
	if changed || !c.headerSent {
		h, err := c.header(dtsMs)
		if err != nil {
			return nil, err
		}
		if h != nil {
			out = append(out, h)
		}
	}
	if len(nalus) == 0 || !c.headerSent {
		return out, nil
	}
	cts := ptsToMs(pts, 90000) - dtsMs
	if cts < 0 {
		cts = 0
	}
	ft := flv.FrameInter
	if key {
		ft = flv.FrameKey
	}
	size := 5
	for _, n := range nalus {
		size += 4 + len(n)
	}
	body := make([]byte, 0, size)
	body = flv.AppendVideoTag(body, flv.VideoTag{FrameType: ft, CodecID: flv.CodecAVC, PacketType: flv.PacketNALU, CTS: int32(cts)})
	body = flv.AppendAVCC(body, nalus...)
	return append(out, &stream.Unit{Kind: stream.KindVideo, DTS: dtsMs, Key: key, Payload: body}), nil
}

// decodeTime derives the DTS (90 kHz) of an access unit; see the file comment.
func (c *h264Ingest) decodeTime(nalus [][]byte, pts int64, key bool) int64 {
	if key && c.dtsBroken {
		c.dts = h264.DTSExtractor{}
		c.dts.Initialize()
		c.dtsBroken = false
	}
	dts := pts
	if !c.dtsBroken && len(nalus) > 0 && len(c.sps) > 0 && len(c.pps) > 0 {
		in := nalus
		if key {
			// The extractor learns the SPS from the access unit.
			in = append([][]byte{c.sps, c.pps}, nalus...)
		}
		if d, err := c.extract(in, pts); err == nil {
			dts = d
		} else {
			c.dtsBroken = true
		}
	}
	if c.haveDTS && dts < c.lastDTS {
		dts = c.lastDTS
	}
	c.haveDTS, c.lastDTS = true, dts
	return dts
}

// extract runs the DTS extractor, turning a panic on malformed input into
// an error: a publisher's bytes must not take the server down.
func (c *h264Ingest) extract(au [][]byte, pts int64) (dts int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("DTS extractor: %v", r)
		}
	}()
	return c.dts.Extract(au, pts)
}

// aacIngest turns MPEG-4 audio access units into hub units.
type aacIngest struct {
	asc        []byte
	sampleRate int
	headerSent bool
}

func newAACIngest(cfg *mpeg4audio.AudioSpecificConfig) (*aacIngest, error) {
	asc, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("AudioSpecificConfig: %w", err)
	}
	if cfg.SampleRate <= 0 {
		return nil, errors.New("AudioSpecificConfig without sample rate")
	}
	return &aacIngest{asc: asc, sampleRate: cfg.SampleRate}, nil
}

func (c *aacIngest) header(dtsMs int64) *stream.Unit {
	c.headerSent = true
	return &stream.Unit{Kind: stream.KindAudio, DTS: dtsMs, Header: true, Payload: flv.AACSequenceHeader(c.asc)}
}

// accessUnits converts the AUs of one RTP packet, the first presented at
// pts (sample-rate units), into hub units.
func (c *aacIngest) accessUnits(aus [][]byte, pts int64) []*stream.Unit {
	out := make([]*stream.Unit, 0, len(aus)+1)
	if !c.headerSent {
		out = append(out, c.header(ptsToMs(pts, c.sampleRate)))
	}
	for i, au := range aus {
		t := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit
		out = append(out, &stream.Unit{Kind: stream.KindAudio, DTS: ptsToMs(t, c.sampleRate), Payload: flv.AACFrame(au)})
	}
	return out
}

// errUnsupported marks hub codecs that RTSP play cannot carry.
var errUnsupported = errors.New("unsupported codec")

// h264Egress turns hub video units into H.264 access units for RTP.
type h264Egress struct {
	sps, pps   []byte
	lengthSize int
}

// setHeader takes an AVC sequence header tag body.
func (e *h264Egress) setHeader(data []byte) error {
	cfg, err := flv.ParseAVCConfig(data)
	if err != nil {
		return err
	}
	if len(cfg.PPS) == 0 {
		return errors.New("AVC configuration without PPS")
	}
	e.sps, e.pps, e.lengthSize = cfg.SPS[0], cfg.PPS[0], cfg.NALULengthSize
	return nil
}

// accessUnit returns the NAL units of a video unit with its PTS in ms, SPS
// and PPS re-inserted before every IDR (players and HLS muxers that join
// mid-stream need them in-band). ok is false for units that carry no frame.
func (e *h264Egress) accessUnit(u *stream.Unit) (au [][]byte, ptsMs int64, ok bool, err error) {
	v, err := flv.ParseVideoTag(u.Payload)
	if err != nil {
		return nil, 0, false, err
	}
	if v.ExHeader || v.CodecID != flv.CodecAVC {
		return nil, 0, false, fmt.Errorf("video codec %d: %w", v.CodecID, errUnsupported)
	}
	switch v.PacketType {
	case flv.PacketSequenceHeader:
		return nil, 0, false, e.setHeader(v.Data)
	case flv.PacketNALU:
	default:
		return nil, 0, false, nil
	}
	if e.lengthSize == 0 {
		return nil, 0, false, nil // no configuration yet
	}
	nalus, err := flv.SplitAVCC(v.Data, e.lengthSize)
	if err != nil {
		return nil, 0, false, err
	}
	au = make([][]byte, 2, len(nalus)+2) // room for SPS and PPS first
	idr := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			e.sps = n
			continue
		case h264.NALUTypePPS:
			e.pps = n
			continue
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			idr = true
		}
		au = append(au, n)
	}
	if idr {
		au[0], au[1] = e.sps, e.pps
	} else {
		au = au[2:]
	}
	if len(au) == 0 {
		return nil, 0, false, nil
	}
	return au, u.DTS + int64(v.CTS), true, nil
}

// aacEgress turns hub audio units into AAC access units for RTP.
type aacEgress struct {
	asc []byte
}

// accessUnit returns the AAC frame of an audio unit. A changed
// AudioSpecificConfig is an error: the SDP already told players the old one.
func (e *aacEgress) accessUnit(u *stream.Unit) (au []byte, ok bool, err error) {
	a, err := flv.ParseAudioTag(u.Payload)
	if err != nil {
		return nil, false, err
	}
	if a.SoundFormat != flv.SoundAAC {
		return nil, false, fmt.Errorf("audio format %d: %w", a.SoundFormat, errUnsupported)
	}
	if a.AACPacketType == flv.AACPacketSequenceHeader {
		if !bytes.Equal(a.Data, e.asc) {
			return nil, false, errConfigChanged
		}
		return nil, false, nil
	}
	if len(a.Data) == 0 {
		return nil, false, nil
	}
	return a.Data, true, nil
}

// errConfigChanged ends RTSP players of a stream whose codec configuration
// changed in a way the SDP they were given cannot describe.
var errConfigChanged = errors.New("codec configuration changed")
