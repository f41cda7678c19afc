package rtmp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/media/rtmp/amf0"
	"github.com/portier/portier/media/sockread"
	"github.com/portier/portier/media/sockwrite"
)

// conn is the part shared by ServerConn and ClientConn: the chunk reader,
// protocol control handling and the single guarded writer.
//
// Concurrency rule: reading (cr, pending, window state) belongs to one
// goroutine at a time; writing goes through wmu, which is held only for the
// duration of one write to the socket.
type conn struct {
	nc           net.Conn
	rd           io.Reader // nc's reads, as raw system calls where it can (sockread)
	br           *bufio.Reader
	cr           *ChunkReader
	readTimeout  time.Duration
	writeTimeout time.Duration
	log          *slog.Logger

	// read side
	peerWindow uint32 // acknowledgement window the peer asked for
	lastAck    uint64
	pending    []Message // messages split from aggregates, not yet returned

	peerAcked atomic.Uint32 // sequence number of the peer's last Acknowledgement
	pongs     atomic.Uint64 // ping responses received

	// write side
	wmu sync.Mutex
	// sw (under wmu) does every write to the socket: TryWriteChunks
	// (servers only), and the blocking writes, which send first what a
	// TryWriteChunks left unwritten.
	sw *sockwrite.Writer
	// wdeadline is the write deadline last set on the socket, in Unix
	// nanoseconds (0: none): write re-arms it only when it has come within
	// three quarters of writeTimeout, not on every write.
	wdeadline    atomic.Int64
	outChunkSize atomic.Uint32
	written      atomic.Uint64
	shut         atomic.Bool // our write side is closed (graceful close in progress)

	aborted atomic.Bool // a setup call's context ended: every deadline is in the past
}

// abortOn ends blocked and future socket operations once ctx is done, by
// moving the deadline into the past. The flag keeps it there: a deadline
// set afterwards (the next message's read deadline, the end of the
// handshake) would otherwise undo the cancellation.
func (c *conn) abortOn(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		c.aborted.Store(true)
		_ = c.nc.SetDeadline(pastDeadline)
	})
}

// pastDeadline is a deadline that has always passed.
var pastDeadline = time.Unix(1, 0)

func (c *conn) setDeadline(t time.Time) {
	_ = c.nc.SetDeadline(t)
	c.wdeadline.Store(unixNano(t))
	c.keepAborted()
}

func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.keepAborted()
}

func (c *conn) setWriteDeadline(t time.Time) {
	_ = c.nc.SetWriteDeadline(t)
	c.wdeadline.Store(unixNano(t))
	c.keepAborted()
}

// armWriteDeadline makes sure a write starting now fails if it is blocked
// for about writeTimeout (between three quarters of it and all of it).
// Setting a socket deadline moves a runtime timer; a player takes dozens of
// writes a second, so the deadline is moved only when it has come closer
// than three quarters of writeTimeout. Called under wmu.
func (c *conn) armWriteDeadline() {
	if c.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if d := c.wdeadline.Load(); d != 0 && d-now.UnixNano() >= int64(c.writeTimeout)*3/4 {
		return
	}
	c.setWriteDeadline(now.Add(c.writeTimeout))
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// keepAborted re-applies the past deadline after a deadline change that may
// have raced with abortOn (the flag is stored before abortOn's deadline).
func (c *conn) keepAborted() {
	if c.aborted.Load() {
		_ = c.nc.SetDeadline(pastDeadline)
	}
}

// errWriteShut is returned by write once our side of the connection is
// half-closed; replies the read loop would send then are dropped.
var errWriteShut = errors.New("rtmp: write side closed")

func newConn(nc net.Conn, maxMessage uint32, readTimeout, writeTimeout time.Duration, log *slog.Logger) *conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// 4 KB: a player only sends small control messages, and with one
	// buffer per connection a larger one dominates a relay's memory per
	// player; reads of whole chunk bodies bypass the buffer anyway.
	rd := sockread.New(nc)
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(rd)
	c := &conn{
		nc:           nc,
		rd:           rd,
		br:           br,
		cr:           NewChunkReader(br, maxMessage),
		sw:           sockwrite.New(nc),
		readTimeout:  readTimeout,
		writeTimeout: writeTimeout,
		log:          log,
	}
	c.outChunkSize.Store(128)
	return c
}

// readBufs keeps connections' 4 KB read buffers: a player's goes back when
// it starts playing (see AcceptPlay) and the next connection takes it.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// handshakeRW reads through the buffered reader so no byte is lost between
// the handshake and the first chunk.
type handshakeRW struct {
	io.Reader
	io.Writer
}

func (c *conn) rw() io.ReadWriter { return handshakeRW{c.br, c.nc} }

// write writes bufs to the socket with writev, under the write lock.
func (c *conn) write(bufs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(bufs...)
}

// writeLocked is write with wmu held. What a TryWriteChunks left unwritten
// goes out first: every byte on the socket passes through here or Try.
func (c *conn) writeLocked(bufs ...[]byte) error {
	if c.shut.Load() {
		return errWriteShut
	}
	c.armWriteDeadline()
	// The rest and bufs in one pooled array: one writev, and no slice
	// header array allocated per write.
	rest := c.sw.Rest()
	pieces := sockwrite.GetBufs()
	*pieces = append(append(*pieces, rest...), bufs...)
	n, err := c.sw.Write(*pieces)
	sockwrite.PutBufs(pieces)
	if len(rest) > 0 {
		c.sw.Sent()
	}
	c.written.Add(uint64(n))
	if err != nil {
		return fmt.Errorf("rtmp write: %w", err)
	}
	return nil
}

// writeMessage chunks msg with the current outbound chunk size and writes it.
func (c *conn) writeMessage(msg Message) error {
	if len(msg.Payload) > 0xffffff {
		return fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, len(msg.Payload))
	}
	b := AppendChunks(nil, msg.CSID(), msg.StreamID, msg.Type, msg.Timestamp, msg.Payload, c.outChunkSize.Load())
	return c.write(b)
}

// setOutChunkSize announces and applies a new outbound chunk size. The
// announcement and the switch happen under the write lock so no message is
// chunked with a size the peer does not know yet.
func (c *conn) setOutChunkSize(n uint32) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeLocked(appendUint32Control(nil, TypeSetChunkSize, n)); err != nil {
		return err
	}
	c.outChunkSize.Store(n)
	return nil
}

// writeCommand encodes an AMF0 command and writes it.
func (c *conn) writeCommand(csid, streamID uint32, values ...any) error {
	body, err := amf0.EncodeAll(nil, values...)
	if err != nil {
		return err
	}
	return c.write(AppendChunks(nil, csid, streamID, TypeCommandAMF0, 0, body, c.outChunkSize.Load()))
}

// writeStatus sends an onStatus command on message stream streamID.
func (c *conn) writeStatus(streamID uint32, level, code, description string) error {
	info := amf0.Object{"level": level, "code": code, "description": description}
	return c.writeCommand(CSIDStatus, streamID, "onStatus", 0.0, nil, info)
}

// readMessage returns the next message that is not protocol control:
// commands, audio, video and data (aggregates are split). Protocol control
// is handled here: chunk size, abort, window size, pings, and
// acknowledgements once the peer's window has been received.
func (c *conn) readMessage() (Message, error) {
	for {
		if msg, ok, err := c.readOne(); ok || err != nil {
			return msg, err
		}
	}
}

// readOne reads one message, as readMessage does; ok is false when it was
// protocol control or an aggregate, which were handled or split here.
func (c *conn) readOne() (msg Message, ok bool, err error) {
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m, true, nil
	}
	if c.readTimeout > 0 {
		c.setReadDeadline(time.Now().Add(c.readTimeout))
	}
	msg, _, err = c.cr.ReadMessage()
	if err != nil {
		return Message{}, false, err
	}
	if err := c.maybeAck(); err != nil && err != errWriteShut {
		return Message{}, false, err
	}
	switch msg.Type {
	case TypeSetChunkSize, TypeAbort, TypeAck, TypeWindowAckSize, TypeSetPeerBandwidth, TypeUserControl:
		if err := c.handleControl(msg); err != nil && err != errWriteShut {
			return Message{}, false, err
		}
		return Message{}, false, nil
	case TypeAggregate:
		subs, err := splitAggregate(msg)
		if err != nil {
			return Message{}, false, err
		}
		c.pending = append(c.pending, subs...)
		return Message{}, false, nil
	case TypeDataAMF3, TypeCommandAMF3:
		// AMF3 envelopes of AMF0 bodies: a leading format byte of 0.
		if len(msg.Payload) > 0 && msg.Payload[0] == 0 {
			msg.Payload = msg.Payload[1:]
		}
		if msg.Type == TypeDataAMF3 {
			msg.Type = TypeDataAMF0
		} else {
			msg.Type = TypeCommandAMF0
		}
	}
	return msg, true, nil
}

func (c *conn) maybeAck() error {
	if c.peerWindow == 0 {
		return nil
	}
	n := c.cr.BytesRead()
	if n-c.lastAck < uint64(c.peerWindow) {
		return nil
	}
	c.lastAck = n
	return c.write(appendUint32Control(nil, TypeAck, uint32(n)))
}

func (c *conn) handleControl(msg Message) error {
	p := msg.Payload
	switch msg.Type {
	case TypeSetChunkSize:
		if len(p) < 4 {
			return errors.New("rtmp: short SetChunkSize")
		}
		return c.cr.SetChunkSize(binary.BigEndian.Uint32(p))
	case TypeAbort:
		if len(p) >= 4 {
			c.cr.Abort(binary.BigEndian.Uint32(p))
		}
	case TypeWindowAckSize:
		if len(p) >= 4 {
			c.peerWindow = binary.BigEndian.Uint32(p)
		}
	case TypeAck:
		// We never wait for acknowledgements; they are kept to tell how
		// far behind the peer's reading is.
		if len(p) >= 4 {
			c.peerAcked.Store(binary.BigEndian.Uint32(p))
		}
	case TypeSetPeerBandwidth:
		// Informational: we do not throttle our output by this hint.
	case TypeUserControl:
		if len(p) < 2 {
			return errors.New("rtmp: short user control message")
		}
		switch binary.BigEndian.Uint16(p) {
		case EventPingRequest:
			if len(p) >= 6 {
				return c.write(appendUserControl(nil, EventPingResponse, binary.BigEndian.Uint32(p[2:])))
			}
		case EventPingResponse:
			c.pongs.Add(1)
		}
	}
	return nil
}

// splitAggregate splits an aggregate message into its sub-messages. Their
// timestamps are rebased so the first one carries the aggregate's timestamp.
func splitAggregate(agg Message) ([]Message, error) {
	p := agg.Payload
	var out []Message
	var base uint32
	for len(p) > 0 {
		if len(p) < 11 {
			return nil, errors.New("rtmp: truncated aggregate sub-message header")
		}
		typ := p[0]
		size := uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		ts := uint32(p[4])<<16 | uint32(p[5])<<8 | uint32(p[6]) | uint32(p[7])<<24
		if uint64(len(p)) < 11+uint64(size)+4 {
			return nil, errors.New("rtmp: truncated aggregate sub-message")
		}
		if len(out) == 0 {
			base = ts
		}
		switch typ {
		case TypeAudio, TypeVideo, TypeDataAMF0:
			out = append(out, Message{
				Type:      typ,
				StreamID:  agg.StreamID,
				Timestamp: agg.Timestamp + (ts - base),
				Payload:   p[11 : 11+size : 11+size],
			})
		default:
			return nil, fmt.Errorf("rtmp: aggregate contains message type %d", typ)
		}
		p = p[11+size+4:]
	}
	return out, nil
}

// gracefulClose stops writing, waits briefly for the peer to read what was
// sent and close its side, then closes the socket. A plain close with unread
// input makes the kernel send a reset, and the peer may never see our last
// status message.
func (c *conn) gracefulClose(linger time.Duration) error {
	if c.shutWrite() {
		c.setReadDeadline(time.Now().Add(linger))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
	}
	return c.nc.Close()
}

// commandName decodes the leading command name and transaction id of an
// AMF0 command, and the remaining values.
func decodeCommand(payload []byte) (name string, txn float64, args []any, err error) {
	vals, err := amf0.DecodeAll(payload)
	if err != nil {
		return "", 0, nil, fmt.Errorf("rtmp: decode command: %w", err)
	}
	if len(vals) == 0 {
		return "", 0, nil, errors.New("rtmp: empty command")
	}
	name, ok := vals[0].(string)
	if !ok {
		return "", 0, nil, errors.New("rtmp: command name is not a string")
	}
	if len(vals) > 1 {
		txn, _ = vals[1].(float64)
	}
	if len(vals) > 2 {
		args = vals[2:]
	}
	return name, txn, args, nil
}

// shutWrite half-closes the connection after any write in progress. It
// reports false when the connection cannot be half-closed.
func (c *conn) shutWrite() bool {
	tc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.shut.Store(true)
	_ = tc.CloseWrite()
	return true
}
