package rtmp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// ChunkReader reassembles RTMP messages from chunks. It keeps per chunk
// stream state for header compression (types 0 to 3), extended timestamps
// (including type-3 chunks that repeat them) and partially received
// messages. It is not safe for concurrent use; one read loop owns it.
type ChunkReader struct {
	r          *bufio.Reader
	chunkSize  uint32
	maxMessage uint32
	streams    map[uint32]*chunkStream
	n          atomic.Uint64 // bytes consumed; read by other goroutines (stats)

	limits   ChunkLimits
	open     int // messages started and not yet complete
	buffered int // capacity held by partially received messages

	// Scratch for headers: arrays on the stack would escape through the
	// reader's io.Reader, one allocation per chunk.
	basic [3]byte  // a chunk's basic header
	mhdr  [11]byte // its message header
	ext   [4]byte  // an extended timestamp
}

// ChunkLimits bound what one peer can make a ChunkReader hold: memory
// follows the bytes actually received, and these caps stop a peer that
// opens many partial messages (chunk size 1, many chunk streams) or feeds
// large ones slowly. Zero fields mean no limit.
type ChunkLimits struct {
	// MaxOpenMessages is how many messages may be partially received at
	// once, over all chunk streams. An encoder interleaves audio, video,
	// data and a command or two: a handful.
	MaxOpenMessages int
	// MaxBufferedBytes is how many bytes partially received messages may
	// hold in total.
	MaxBufferedBytes int
	// WholeFirst allocates a message's announced length (up to
	// maxFirstPiece) with its first chunk, instead of growing the buffer
	// with each chunk's bytes: one allocation and no copy per message, for
	// a peer trusted with memory (an authorised publisher). Its partial
	// messages still count whole against MaxBufferedBytes.
	WholeFirst bool
}

// Default limits: before a publish is authorised a peer sends only
// commands (a few hundred bytes each); after it, video keyframes of
// several MB at high bitrates, next to audio and data.
var (
	DefaultPreAuthLimits = ChunkLimits{MaxOpenMessages: 8, MaxBufferedBytes: 64 << 10}
	DefaultPublishLimits = ChunkLimits{MaxOpenMessages: 16, MaxBufferedBytes: 3 * DefaultMaxMessageSize, WholeFirst: true}
)

// ErrChunkLimit is returned when a peer exceeds the reader's ChunkLimits.
var ErrChunkLimit = errors.New("rtmp: chunk limit exceeded")

// maxFirstPiece bounds the first allocation for a message (the rest of a
// chunk is read in pieces as the buffer doubles): a peer that sets a large
// chunk size and then sends one byte does not get a large buffer.
const maxFirstPiece = 64 << 10

// maxChunkStreams bounds the per-connection chunk stream table.
const maxChunkStreams = 1024

type chunkStream struct {
	timestamp uint32 // absolute timestamp of the current message
	delta     uint32 // last timestamp field (delta for types 1-2, absolute for type 0)
	length    uint32
	typ       uint8
	streamID  uint32
	extended  bool   // the last header carried an extended timestamp
	extValue  uint32 // the extended timestamp value last seen
	seen      bool   // a type 0 header has been seen
	buf       []byte // payload of the message being received
	inMessage bool
}

// NewChunkReader returns a reader with the protocol's initial chunk size of
// 128 and the given message size limit (0 means DefaultMaxMessageSize).
func NewChunkReader(r io.Reader, maxMessage uint32) *ChunkReader {
	if maxMessage == 0 {
		maxMessage = DefaultMaxMessageSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &ChunkReader{r: br, chunkSize: 128, maxMessage: maxMessage, streams: map[uint32]*chunkStream{},
		limits: DefaultPublishLimits}
}

// rebuffer moves the reader to a buffer of size bytes on r, carrying over
// what the current one holds when that fits, and reports whether it did: a
// player's connection reads only small control messages once it plays and
// holds less memory with a small buffer.
func (cr *ChunkReader) rebuffer(r io.Reader, size int) (*bufio.Reader, bool) {
	n := cr.r.Buffered()
	if n > size || cr.r.Size() == size {
		return cr.r, false
	}
	if n > 0 {
		held, _ := cr.r.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(held)), r)
	}
	cr.r = bufio.NewReaderSize(r, size)
	return cr.r, true
}

// SetChunkSize applies a SetChunkSize received from the peer.
func (cr *ChunkReader) SetChunkSize(n uint32) error {
	n &= 0x7fffffff // the top bit is reserved
	if n == 0 || n > MaxChunkSize {
		return fmt.Errorf("%w: peer set %d (allowed 1..%d)", ErrBadChunkSize, n, MaxChunkSize)
	}
	cr.chunkSize = n
	return nil
}

// SetLimits sets the caps on partially received messages. Lowering them
// does not drop what is already buffered; the next chunk is checked.
func (cr *ChunkReader) SetLimits(l ChunkLimits) { cr.limits = l }

// Buffered returns how many bytes partially received messages hold and how
// many messages are open.
func (cr *ChunkReader) Buffered() (bytes, open int) { return cr.buffered, cr.open }

// Abort discards the partially received message on chunk stream csid.
func (cr *ChunkReader) Abort(csid uint32) {
	if cs := cr.streams[csid]; cs != nil && cs.inMessage {
		cr.endMessage(cs)
	}
}

// endMessage forgets cs's partial message and its accounting.
func (cr *ChunkReader) endMessage(cs *chunkStream) {
	cr.buffered -= cap(cs.buf)
	cr.open--
	cs.buf = nil
	cs.inMessage = false
}

// grow enlarges cs's full buffer before the next piece of a chunk of
// which remaining bytes are still to be read: capacity doubles with the
// data received (the first piece is at most maxFirstPiece, and capacity
// never passes the announced length), within MaxBufferedBytes.
func (cr *ChunkReader) grow(cs *chunkStream, remaining int) error {
	old := cap(cs.buf)
	first := remaining
	if cr.limits.WholeFirst {
		first = int(cs.length)
	}
	newCap := min(max(2*old, min(first, maxFirstPiece)), int(cs.length))
	if m := cr.limits.MaxBufferedBytes; m > 0 && cr.buffered-old+newCap > m {
		if cr.buffered+1 > m {
			return fmt.Errorf("%w: partial messages hold %d bytes (limit %d)", ErrChunkLimit, cr.buffered, m)
		}
		newCap = m - (cr.buffered - old)
	}
	b := make([]byte, len(cs.buf), newCap)
	copy(b, cs.buf)
	cr.buffered += newCap - old
	cs.buf = b
	return nil
}

// BytesRead returns the number of bytes consumed from the underlying reader.
// It is safe to call from any goroutine.
func (cr *ChunkReader) BytesRead() uint64 { return cr.n.Load() }

func (cr *ChunkReader) readFull(b []byte) error {
	n, err := io.ReadFull(cr.r, b)
	cr.n.Add(uint64(n))
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("rtmp: truncated chunk: %w", err)
	}
	return err
}

// ReadMessage reads chunks until a message is complete and returns it,
// together with the chunk stream id it arrived on. The payload is a fresh
// slice owned by the caller.
func (cr *ChunkReader) ReadMessage() (Message, uint32, error) {
	hdr := &cr.basic
	for {
		if err := cr.readFull(hdr[:1]); err != nil {
			return Message{}, 0, err
		}
		format := hdr[0] >> 6
		csid := uint32(hdr[0] & 0x3f)
		switch csid {
		case 0:
			if err := cr.readFull(hdr[:1]); err != nil {
				return Message{}, 0, err
			}
			csid = 64 + uint32(hdr[0])
		case 1:
			if err := cr.readFull(hdr[:2]); err != nil {
				return Message{}, 0, err
			}
			csid = 64 + uint32(hdr[0]) + uint32(hdr[1])<<8
		}
		cs := cr.streams[csid]
		if cs == nil {
			if len(cr.streams) >= maxChunkStreams {
				return Message{}, 0, fmt.Errorf("rtmp: more than %d chunk streams", maxChunkStreams)
			}
			if format != 0 {
				return Message{}, 0, fmt.Errorf("rtmp: chunk stream %d starts with a type-%d header", csid, format)
			}
			cs = &chunkStream{}
			cr.streams[csid] = cs
		}
		if err := cr.readHeader(cs, format); err != nil {
			return Message{}, 0, fmt.Errorf("rtmp: chunk stream %d: %w", csid, err)
		}
		want := cs.length - uint32(len(cs.buf))
		k := min(want, cr.chunkSize)
		// Read the chunk body in pieces, growing the buffer with the data
		// actually received: neither a header announcing 8 MB nor a large
		// chunk size makes us allocate before the bytes arrive.
		for remaining := int(k); remaining > 0; {
			if len(cs.buf) == cap(cs.buf) {
				if err := cr.grow(cs, remaining); err != nil {
					return Message{}, 0, fmt.Errorf("rtmp: chunk stream %d: %w", csid, err)
				}
			}
			start := len(cs.buf)
			n := min(remaining, cap(cs.buf)-start)
			cs.buf = cs.buf[:start+n]
			if err := cr.readFull(cs.buf[start:]); err != nil {
				return Message{}, 0, err
			}
			remaining -= n
		}
		if uint32(len(cs.buf)) < cs.length {
			continue
		}
		msg := Message{Type: cs.typ, StreamID: cs.streamID, Timestamp: cs.timestamp, Payload: cs.buf}
		cr.endMessage(cs)
		return msg, csid, nil
	}
}

// readHeader reads the message header of a chunk of the given format and
// updates the chunk stream state.
func (cr *ChunkReader) readHeader(cs *chunkStream, format byte) error {
	hdr := &cr.mhdr
	sizes := [4]int{11, 7, 3, 0}
	n := sizes[format]
	if err := cr.readFull(hdr[:n]); err != nil {
		return err
	}
	if format == 3 {
		if cs.inMessage {
			// Continuation chunk. The specification says it repeats the
			// extended timestamp; some encoders omit it, so consume the four
			// bytes only when they carry the value we expect.
			if cs.extended {
				p, err := cr.r.Peek(4)
				if err == nil && binary.BigEndian.Uint32(p) == cs.extValue {
					_, _ = cr.r.Discard(4)
					cr.n.Add(4)
				}
			}
			return nil
		}
		if !cs.seen {
			return fmt.Errorf("type-3 chunk without a previous header")
		}
		// A new message with every header field repeated, timestamp
		// advanced by the previous delta.
		delta := cs.delta
		if cs.extended {
			ext := &cr.ext
			if err := cr.readFull(ext[:]); err != nil {
				return err
			}
			delta = binary.BigEndian.Uint32(ext[:])
			cs.extValue = delta
		}
		cs.timestamp += delta
		return cr.startMessage(cs)
	}
	if !cs.seen && format != 0 {
		return fmt.Errorf("type-%d chunk without a previous header", format)
	}
	if cs.inMessage {
		return fmt.Errorf("type-%d header in the middle of a message", format)
	}
	field := uint32(hdr[0])<<16 | uint32(hdr[1])<<8 | uint32(hdr[2])
	if format <= 1 {
		cs.length = uint32(hdr[3])<<16 | uint32(hdr[4])<<8 | uint32(hdr[5])
		cs.typ = hdr[6]
	}
	if format == 0 {
		cs.streamID = binary.LittleEndian.Uint32(hdr[7:11])
	}
	cs.extended = field == 0xffffff
	if cs.extended {
		ext := &cr.ext
		if err := cr.readFull(ext[:]); err != nil {
			return err
		}
		field = binary.BigEndian.Uint32(ext[:])
		cs.extValue = field
	}
	cs.delta = field
	if format == 0 {
		cs.timestamp = field
		cs.seen = true
	} else {
		cs.timestamp += field
	}
	return cr.startMessage(cs)
}

func (cr *ChunkReader) startMessage(cs *chunkStream) error {
	if cs.length > cr.maxMessage {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrMessageTooLarge, cs.length, cr.maxMessage)
	}
	if m := cr.limits.MaxOpenMessages; m > 0 && cr.open >= m && cs.length > cr.chunkSize {
		// Only a message longer than a chunk stays open; one that fits
		// in this chunk completes before the next chunk is read.
		return fmt.Errorf("%w: more than %d partially received messages", ErrChunkLimit, m)
	}
	cs.inMessage = true
	cs.buf = nil
	cr.open++
	return nil
}
