package flv

import (
	"errors"
	"fmt"

	"github.com/portier/portier/media/rtmp/amf0"
)

// ParseMetadata decodes an onMetaData script body, with or without the
// "@setDataFrame" wrapper publishers send. The properties may be an ECMA
// array or an object; both are returned as a map.
func ParseMetadata(payload []byte) (map[string]any, error) {
	vals, err := amf0.DecodeAll(payload)
	if err != nil {
		return nil, fmt.Errorf("flv: script data: %w", err)
	}
	if len(vals) > 0 && vals[0] == "@setDataFrame" {
		vals = vals[1:]
	}
	if len(vals) < 2 || vals[0] != "onMetaData" {
		return nil, errors.New("flv: not an onMetaData script body")
	}
	switch m := vals[1].(type) {
	case amf0.ECMAArray:
		return map[string]any(m), nil
	case amf0.Object:
		return map[string]any(m), nil
	}
	return nil, fmt.Errorf("flv: onMetaData properties are a %T", vals[1])
}

// BuildMetadata encodes an onMetaData script body with the properties as an
// ECMA array, the form players expect.
func BuildMetadata(props map[string]any) ([]byte, error) {
	return amf0.EncodeAll(nil, "onMetaData", amf0.ECMAArray(props))
}

// StripSetDataFrame removes a leading "@setDataFrame" string from a script
// body, as a server does before storing a publisher's metadata for players.
// It returns the body unchanged (and false) when there is no such prefix.
// The result aliases payload.
func StripSetDataFrame(payload []byte) ([]byte, bool) {
	v, n, err := amf0.Decode(payload)
	if err != nil || v != "@setDataFrame" {
		return payload, false
	}
	return payload[n:], true
}

// TagTimestamp is the timestamp to send a tag (or RTMP message) with:
// dts, except for onMetaData, which always goes out at 0. ffmpeg's flv
// demuxer (ffprobe, ffplay, mpv and players built on libavformat) treats
// onMetaData as stream configuration only at timestamp 0; at any other
// timestamp it makes a "text" subtitle stream of it, listed before the
// video and audio. nginx-rtmp and SRS send metadata at 0 as well. A hub
// restamps re-sent headers to a joining player's first keyframe, which is
// right for the AVC and AAC sequence headers but not for onMetaData.
func TagTimestamp(onMetaData bool, dts int64) uint32 {
	if onMetaData {
		return 0
	}
	return uint32(dts)
}
