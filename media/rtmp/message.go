// Package rtmp implements the RTMP protocol: handshake, chunk stream reader
// and writer, the server side of a connection (ServerConn) and a publish and
// play client (ClientConn). It knows nothing about the stream hub: servers
// built on it decide what to do with a publish or play request.
//
// Concurrency: every byte written to a connection goes through one
// mutex-guarded writer, so replies written by a connection's read loop
// (acknowledgements, ping responses, command results) never interleave with
// media written by another goroutine.
package rtmp

import (
	"errors"
	"fmt"
)

// Message types.
const (
	TypeSetChunkSize     uint8 = 1
	TypeAbort            uint8 = 2
	TypeAck              uint8 = 3
	TypeUserControl      uint8 = 4
	TypeWindowAckSize    uint8 = 5
	TypeSetPeerBandwidth uint8 = 6
	TypeAudio            uint8 = 8
	TypeVideo            uint8 = 9
	TypeDataAMF3         uint8 = 15
	TypeCommandAMF3      uint8 = 17
	TypeDataAMF0         uint8 = 18
	TypeCommandAMF0      uint8 = 20
	TypeAggregate        uint8 = 22
)

// User control event types.
const (
	EventStreamBegin     uint16 = 0
	EventStreamEOF       uint16 = 1
	EventStreamDry       uint16 = 2
	EventSetBufferLength uint16 = 3
	EventStreamIsRecord  uint16 = 4
	EventPingRequest     uint16 = 6
	EventPingResponse    uint16 = 7
)

// Chunk stream ids used by this package when it writes. Any value from 2 to
// 65599 is valid for AppendChunks.
const (
	CSIDControl = 2
	CSIDCommand = 3
	CSIDAudio   = 4
	CSIDStatus  = 5
	CSIDVideo   = 6
	CSIDData    = 7
)

// Defaults.
const (
	// DefaultChunkSize is the outbound chunk size announced by both sides.
	DefaultChunkSize = 4096
	// DefaultMaxMessageSize bounds the length of one received message.
	DefaultMaxMessageSize = 8 << 20
	// MaxChunkSize is the largest chunk size a peer may set.
	MaxChunkSize = 16 << 20
	// DefaultWindowAckSize is the acknowledgement window announced to peers.
	DefaultWindowAckSize = 2_500_000
	// PlayStreamID is the message stream id a ServerConn hands out in
	// createStream; media written to players uses it.
	PlayStreamID = 1
)

// Message is one RTMP message.
type Message struct {
	Type      uint8
	StreamID  uint32
	Timestamp uint32
	Payload   []byte
}

// CSID returns the chunk stream id this package uses to send a message of
// this type.
func (m Message) CSID() uint32 {
	switch m.Type {
	case TypeAudio:
		return CSIDAudio
	case TypeVideo:
		return CSIDVideo
	case TypeDataAMF0, TypeDataAMF3:
		return CSIDData
	case TypeCommandAMF0, TypeCommandAMF3:
		return CSIDCommand
	default:
		return CSIDControl
	}
}

// Errors.
var (
	ErrMessageTooLarge = errors.New("rtmp: message too large")
	ErrBadChunkSize    = errors.New("rtmp: invalid chunk size")
	ErrClosed          = errors.New("rtmp: connection closed")
)

// StatusError is an error status received from the peer (an onStatus or
// _error with level "error"), or sent to it by Reject.
type StatusError struct {
	Level       string
	Code        string
	Description string
}

func (e *StatusError) Error() string {
	if e.Description == "" {
		return "rtmp: " + e.Code
	}
	return fmt.Sprintf("rtmp: %s: %s", e.Code, e.Description)
}

// TimestampUnwrapper turns 32-bit RTMP timestamps, which wrap after about
// 49.7 days (and which some encoders wrap earlier), into a monotonic 64-bit
// millisecond clock. Small backward steps (interleaved audio and video) are
// kept as negative deltas; the zero value is ready to use.
type TimestampUnwrapper struct {
	last    uint32
	current int64
	started bool
}

// Unwrap returns the 64-bit timestamp for ts.
func (u *TimestampUnwrapper) Unwrap(ts uint32) int64 {
	if !u.started {
		u.started = true
		u.last = ts
		u.current = int64(ts)
		return u.current
	}
	u.current += int64(int32(ts - u.last))
	u.last = ts
	return u.current
}
