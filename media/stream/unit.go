// Package stream fans out one publisher's media to many readers.
//
// The hub knows no protocol: protocol servers turn what they receive into
// Units and hand them to a Publisher; readers get batches of the same Units
// (shared, never copied) and encode them for their own wire format, using
// Unit.Encoded so that each encoding of a unit is built once for all readers.
// The publisher never waits for a reader: every reader has a bounded queue, a
// reader that falls behind skips to the next keyframe, and one that keeps
// falling behind is dropped and counted.
package stream

import "sync/atomic"

// Kind says what a Unit carries.
type Kind uint8

// Unit kinds.
const (
	KindVideo Kind = iota + 1
	KindAudio
	KindData
)

func (k Kind) String() string {
	switch k {
	case KindVideo:
		return "video"
	case KindAudio:
		return "audio"
	case KindData:
		return "data"
	}
	return "unknown"
}

// Unit is one media message. It is immutable once given to Publisher.Write:
// every reader receives the same *Unit.
type Unit struct {
	Kind Kind
	// DTS is the decode timestamp in milliseconds. It is 64-bit and never
	// wraps inside the hub; RTMP writers truncate it to uint32.
	DTS int64
	// Key marks a video keyframe (the start of a GOP).
	Key bool
	// Header marks codec configuration (AVC sequence header, AAC
	// AudioSpecificConfig) or stream metadata (onMetaData).
	Header bool
	// Payload is the FLV/RTMP tag body: for video the frame-type/codec byte,
	// AVCPacketType, composition time and AVCC data; for audio the
	// sound-format byte, AAC packet type and data; for data AMF0 values.
	Payload []byte

	seq uint64                    // position in the stream, set by Publisher.Write
	enc atomic.Pointer[[]encoded] // per-encoding cache, copy-on-write
}

// EncKey names one encoding of a Unit, for example RTMP chunks for a given
// chunk size and message stream id, or an FLV tag. Keys must be comparable
// and identical for every reader that wants the same bytes.
type EncKey struct {
	// Format names the encoding ("rtmp-chunks", "flv-tag", ...).
	Format string
	// A and B are format parameters (for RTMP: chunk size and stream id).
	A, B uint32
}

type encoded struct {
	key EncKey
	b   []byte
}

// Encoded returns the bytes of u in the encoding named by key, building them
// with build the first time. The result is shared by every caller and must not
// be modified. build runs without any lock held; when two readers race on the
// first encoding, both build and the first stored result wins.
func (u *Unit) Encoded(key EncKey, build func() []byte) []byte {
	if b, ok := u.lookup(u.enc.Load(), key); ok {
		return b
	}
	b := build()
	for {
		old := u.enc.Load()
		if prev, ok := u.lookup(old, key); ok {
			return prev
		}
		var list []encoded
		if old != nil {
			list = make([]encoded, len(*old), len(*old)+1)
			copy(list, *old)
		}
		list = append(list, encoded{key: key, b: b})
		if u.enc.CompareAndSwap(old, &list) {
			return b
		}
	}
}

func (u *Unit) lookup(p *[]encoded, key EncKey) ([]byte, bool) {
	if p == nil {
		return nil, false
	}
	for i := range *p {
		if (*p)[i].key == key {
			return (*p)[i].b, true
		}
	}
	return nil, false
}

// restamped returns a copy of a header unit carrying timestamp dts, so that
// headers re-sent to a reader do not go back in time. The copy has its own
// encoding cache.
func (u *Unit) restamped(dts int64) *Unit {
	if u.DTS == dts {
		return u
	}
	return &Unit{Kind: u.Kind, DTS: dts, Key: u.Key, Header: u.Header, Payload: u.Payload, seq: u.seq}
}
