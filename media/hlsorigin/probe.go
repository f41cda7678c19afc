package hlsorigin

import (
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
)

// mediaInfo is what the master playlist needs from a rendition's media,
// measured in one of its segments: RFC 6381 codec strings (video first),
// the picture size and the frame rate (0 for audio-only renditions).
type mediaInfo struct {
	Codecs        []string
	Width, Height int
	FPS           float64
}

// errNoMedia is a segment in which no H.264 or AAC track was recognised.
var errNoMedia = errors.New("no H.264 or AAC track")

// probeTS reads an MPEG-TS segment: CODECS from the H.264 SPS
// (avc1.PPCCLL: profile_idc, the constraint flags byte, level_idc) and the
// AAC AudioSpecificConfig of the ADTS headers (mp4a.40.OT), RESOLUTION
// from the SPS (cropping applied), FRAME-RATE from the SPS timing info, or
// when the SPS has none from the spacing of the segment's decode
// timestamps. A track of another codec makes the result partial, so it
// fails: the caller keeps what the writer declared.
func probeTS(r io.Reader) (mediaInfo, error) {
	var mi mediaInfo
	tr := &mpegts.Reader{R: r}
	if err := tr.Initialize(); err != nil {
		return mi, fmt.Errorf("mpeg-ts: %w", err)
	}
	var sps []byte
	var dts []int64
	var video, audio string
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *mpegts.CodecH264:
			if video != "" {
				continue
			}
			video = "avc1"
			tr.OnDataH264(t, func(_ int64, d int64, au [][]byte) error {
				dts = append(dts, d)
				for _, n := range au {
					if len(n) >= 4 && sps == nil && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
						sps = append([]byte(nil), n...)
					}
				}
				return nil
			})
		case *mpegts.CodecMPEG4Audio:
			if audio == "" {
				audio = fmt.Sprintf("mp4a.40.%d", int(c.Config.Type))
			}
		default:
			return mi, fmt.Errorf("track of codec %T", c)
		}
	}
	if video == "" && audio == "" {
		return mi, errNoMedia
	}
	if video != "" {
		for {
			if err := tr.Read(); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				return mi, fmt.Errorf("mpeg-ts: %w", err)
			}
		}
		if sps == nil {
			return mi, errors.New("no H.264 SPS in the segment")
		}
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			return mi, fmt.Errorf("h264 sps: %w", err)
		}
		mi.Codecs = append(mi.Codecs, fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3]))
		mi.Width, mi.Height = s.Width(), s.Height()
		mi.FPS = s.FPS()
		if mi.FPS <= 0 && len(dts) > 1 && dts[len(dts)-1] > dts[0] {
			mi.FPS = float64(len(dts)-1) * 90000 / float64(dts[len(dts)-1]-dts[0])
		}
	}
	if audio != "" {
		mi.Codecs = append(mi.Codecs, audio)
	}
	return mi, nil
}
