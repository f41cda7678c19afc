package edge

import (
	"bytes"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// onMetaData is the AMF0 string that starts a metadata data message.
var onMetaData = []byte("\x02\x00\x0aonMetaData")

// unitFromMessage classifies one RTMP media message for the hub, as the
// RTMP server does for publishers. It returns nil for messages that carry
// no media (empty payloads, other types).
func unitFromMessage(msg rtmp.Message) *stream.Unit {
	if len(msg.Payload) == 0 {
		return nil
	}
	u := &stream.Unit{Payload: msg.Payload}
	switch msg.Type {
	case rtmp.TypeVideo:
		u.Kind = stream.KindVideo
		u.Key, u.Header = flv.Classify(flv.TagVideo, msg.Payload)
	case rtmp.TypeAudio:
		u.Kind = stream.KindAudio
		_, u.Header = flv.Classify(flv.TagAudio, msg.Payload)
	case rtmp.TypeDataAMF0:
		u.Kind = stream.KindData
		u.Payload, _ = flv.StripSetDataFrame(msg.Payload)
		if len(u.Payload) == 0 {
			return nil
		}
		// Only onMetaData is configuration; other script data flows
		// with the media.
		u.Header = bytes.HasPrefix(u.Payload, onMetaData)
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
