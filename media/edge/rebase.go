package edge

import (
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// unitFromMessage classifies one RTMP media message for the hub. It returns
// nil for messages that carry no media (empty payloads, other types).
func unitFromMessage(msg rtmp.Message) *stream.Unit {
	if len(msg.Payload) == 0 {
		return nil
	}
	u := &stream.Unit{Payload: msg.Payload}
	switch msg.Type {
	case rtmp.TypeVideo:
		u.Kind = stream.KindVideo
		b := msg.Payload[0]
		if b&0x80 != 0 {
			// Enhanced RTMP: frame type in bits 4-6, packet type in 0-3
			// (0 = sequence start, 5 = metadata).
			u.Key = (b>>4)&0x07 == 1
			pt := b & 0x0f
			u.Header = pt == 0 || pt == 4 || pt == 5
			break
		}
		u.Key = b>>4 == 1
		codec := b & 0x0f
		// AVC (7) and the common HEVC extension (12): packet type 0 is
		// the decoder configuration record.
		u.Header = (codec == 7 || codec == 12) && len(msg.Payload) > 1 && msg.Payload[1] == 0
	case rtmp.TypeAudio:
		u.Kind = stream.KindAudio
		// AAC (10): packet type 0 is the AudioSpecificConfig.
		u.Header = msg.Payload[0]>>4 == 10 && len(msg.Payload) > 1 && msg.Payload[1] == 0
	case rtmp.TypeDataAMF0:
		u.Kind = stream.KindData
		u.Header = true
	default:
		return nil
	}
	return u
}

// defaultFrameInterval is the video frame interval assumed until one is
// measured (25 fps).
const defaultFrameInterval = 40

// rebaser turns the timestamps of successive upstream sessions into one
// continuous, monotonic timeline for the edge's publisher.
//
// The first session passes timestamps through (unwrapped to 64 bits). After
// a switch, nothing but codec headers is forwarded until the new upstream's
// first video keyframe (any frame for an audio-only stream); from then on
//
//	out = lastOut + frameInterval + (upstream - firstUpstreamAfterSwitch)
//
// and every output DTS is clamped so that each kind never goes backwards.
// A rebaser is used by one goroutine.
type rebaser struct {
	unwrap    rtmp.TimestampUnwrapper
	waitKey   bool // after a switch, until the first keyframe
	haveBase  bool
	offset    int64
	hasVideo  bool
	lastOut   int64
	haveOut   bool
	lastKind  [4]int64
	haveKind  [4]bool
	lastVideo int64 // upstream DTS of the previous video frame, this session
	haveLastV bool
	interval  int64
}

// newSession resets per-session state; call it before the first message of
// every upstream session.
func (r *rebaser) newSession() {
	r.unwrap = rtmp.TimestampUnwrapper{}
	r.haveLastV = false
	if r.haveOut {
		r.waitKey = true
		r.haveBase = false
	} else {
		r.waitKey = false
		r.haveBase = true
		r.offset = 0
	}
}

// next returns the unit to publish for msg, or nil to drop it.
func (r *rebaser) next(msg rtmp.Message) *stream.Unit {
	u := unitFromMessage(msg)
	if u == nil {
		return nil
	}
	up := r.unwrap.Unwrap(msg.Timestamp)
	if u.Kind == stream.KindVideo {
		r.hasVideo = true
	}
	if u.Header {
		switch {
		case r.haveBase:
			u.DTS = up + r.offset
		default:
			u.DTS = r.lastOut
		}
		r.emit(u)
		return u
	}
	if r.waitKey {
		if r.hasVideo && !(u.Kind == stream.KindVideo && u.Key) {
			return nil
		}
		r.waitKey = false
		r.haveBase = true
		r.offset = r.lastOut + r.frameInterval() - up
	}
	if u.Kind == stream.KindVideo {
		if r.haveLastV {
			if d := up - r.lastVideo; d > 0 && d <= 1000 {
				r.interval = d
			}
		}
		r.lastVideo, r.haveLastV = up, true
	}
	u.DTS = up + r.offset
	r.emit(u)
	return u
}

func (r *rebaser) frameInterval() int64 {
	if r.interval > 0 {
		return r.interval
	}
	return defaultFrameInterval
}

// emit clamps u.DTS so that its kind never goes backwards and records it.
func (r *rebaser) emit(u *stream.Unit) {
	k := int(u.Kind) & 3
	if r.haveKind[k] && u.DTS < r.lastKind[k] {
		u.DTS = r.lastKind[k]
	}
	r.lastKind[k], r.haveKind[k] = u.DTS, true
	if !r.haveOut || u.DTS > r.lastOut {
		r.lastOut = u.DTS
	}
	r.haveOut = true
}
