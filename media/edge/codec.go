package edge

import (
	"fmt"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// codecInfo updates ci from a codec header unit; it reports whether
// anything changed. Headers it cannot parse leave ci as it was.
func codecInfo(ci *stream.CodecInfo, u *stream.Unit) bool {
	before := *ci
	switch u.Kind {
	case stream.KindVideo:
		v, err := flv.ParseVideoTag(u.Payload)
		if err != nil || !v.SequenceHeader() {
			return false
		}
		switch {
		case v.ExHeader:
			ci.VideoCodec = fourCC(v.FourCC)
		case v.CodecID == flv.CodecAVC:
			ci.VideoCodec = "h264"
			if c, err := flv.ParseAVCConfig(v.Data); err == nil && len(c.SPS) > 0 {
				if vi, err := c.VideoInfo(); err == nil {
					ci.Width, ci.Height = vi.Width, vi.Height
				}
			}
		case v.CodecID == flv.CodecHEVC:
			ci.VideoCodec = "h265"
		}
	case stream.KindAudio:
		a, err := flv.ParseAudioTag(u.Payload)
		if err != nil || !a.SequenceHeader() {
			return false
		}
		ci.AudioCodec = "aac"
		if ai, err := flv.ParseAudioSpecificConfig(a.Data); err == nil {
			ci.SampleRate, ci.Channels = ai.SampleRate, ai.Channels
		}
	}
	return *ci != before
}

func fourCC(b [4]byte) string {
	switch string(b[:]) {
	case "hvc1":
		return "h265"
	case "av01":
		return "av1"
	case "vp09":
		return "vp9"
	}
	return fmt.Sprintf("%q", string(b[:]))
}
