// Package bench holds Portier's benchmarks and the tools they share: an RTMP
// (and HTTP-FLV) play load client that works the same against our relay,
// nginx-rtmp and MediaMTX, and a sampler of a server process's CPU time and
// memory.
//
// The load client is written for the benchmark and shares no code with the
// relay under test: a minimal RTMP player (simple handshake, connect,
// createStream, play) that reads chunks, honours SetChunkSize and Abort,
// acknowledges when the server's window asks for it, answers pings, and
// counts bytes and media messages without copying media payloads.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// RTMP message types the player handles.
const (
	msgSetChunkSize  = 1
	msgAbort         = 2
	msgAck           = 3
	msgUserControl   = 4
	msgWindowAckSize = 5
	msgSetPeerBW     = 6
	msgAudio         = 8
	msgVideo         = 9
	msgDataAMF0      = 18
	msgCommandAMF0   = 20
	msgAggregate     = 22
)

// Limits that keep a broken or hostile server from exhausting the client.
const (
	maxChunkSize      = 1 << 24
	maxKeptMessage    = 4 << 20 // commands, data and aggregates are buffered
	maxChunkStreams   = 64
	flvTagOverhead    = 15 // FLV tag header (11) + previous tag size (4)
	clientChunkSize   = 128
	handshakeSize     = 1536
	deadlineRefresh   = time.Second
	defaultIOTimeout  = 10 * time.Second
	playStartWaitMsgs = 10000
)

// ErrStreamEnded is returned when the server signals the end of the stream.
var ErrStreamEnded = errors.New("stream ended")

// player is one RTMP play session. It is used by one goroutine only; the
// counters read by the coordinator during the run are atomic.
type player struct {
	conn    net.Conn
	br      *bufio.Reader
	cr      *countingReader
	bw      *bufio.Writer
	timeout time.Duration

	inChunk  uint32
	chunks   map[uint32]*chunkState
	window   uint32
	lastAck  uint64
	streamID uint32

	flv *flvBody // set for an HTTP-FLV player (dialFLV); nil for RTMP

	// Counters.
	flvBytes   atomic.Int64 // media payload + FLV tag overhead per message
	mediaBytes int64
	mediaMsgs  int64
	videoMsgs  int64
	audioMsgs  int64
	acksSent   int64
	pings      int64

	// Lag tracking: offset = wall − media timestamp; lag = offset − min offset.
	started    time.Time
	haveMedia  bool
	firstTS    uint32
	maxTS      int64 // media ms since firstTS, unwrapped
	lastTS     uint32
	minOffset  time.Duration
	lagFrom    atomic.Int64 // unix ns from which lag counts (window start)
	worstLag   time.Duration
	firstMedia time.Time
}

type chunkState struct {
	ts        uint32
	delta     uint32
	length    uint32
	typeID    uint8
	streamID  uint32
	extended  bool
	remaining uint32 // bytes left of the message being read (0: none)
	keep      bool
	buf       []byte
}

// countingReader counts bytes read from the socket (for acknowledgements)
// and refreshes the read deadline at most once per deadlineRefresh.
type countingReader struct {
	conn    net.Conn
	n       uint64
	timeout time.Duration
	last    time.Time
}

func (c *countingReader) Read(b []byte) (int, error) {
	if now := time.Now(); now.Sub(c.last) > deadlineRefresh {
		c.last = now
		_ = c.conn.SetReadDeadline(now.Add(c.timeout))
	}
	n, err := c.conn.Read(b)
	c.n += uint64(n)
	return n, err
}

// playTarget splits rtmp://host:port/app[/inst]/name?query into the dial
// address, app, tcUrl and stream name (the last path element plus query).
func playTarget(raw string) (addr, app, tcURL, name string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", "", fmt.Errorf("parse play url: %w", err)
	}
	if u.Scheme != "rtmp" {
		return "", "", "", "", fmt.Errorf("play url scheme %q, want rtmp", u.Scheme)
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1935")
	}
	p := strings.Trim(u.Path, "/")
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", "", "", "", fmt.Errorf("play url path %q: want /app/name", u.Path)
	}
	app, name = p[:i], p[i+1:]
	if u.RawQuery != "" {
		name += "?" + u.RawQuery
	}
	tcURL = "rtmp://" + u.Host + "/" + app
	return addr, app, tcURL, name, nil
}

// dialPlay connects, handshakes and plays raw, returning when the first
// media message has arrived (some servers answer NetStream.Play.Start and
// only then find that nothing is published).
func dialPlay(ctx context.Context, raw string, timeout time.Duration) (*player, error) {
	addr, app, tcURL, name, err := playTarget(raw)
	if err != nil {
		return nil, err
	}
	return dialPlayer(ctx, addr, timeout, func(p *player) error {
		if err := p.handshake(); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		return p.startPlay(app, tcURL, name)
	})
}

// dialPlayer connects to addr and runs start (the protocol's way to a first
// media message) with every read and write bounded by timeout and ctx; the
// player it returns reads without a write deadline.
func dialPlayer(ctx context.Context, addr string, timeout time.Duration, start func(*player) error) (*player, error) {
	if timeout <= 0 {
		timeout = defaultIOTimeout
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	p := newPlayer(conn, timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := start(p); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return p, nil
}

func newPlayer(conn net.Conn, timeout time.Duration) *player {
	cr := &countingReader{conn: conn, timeout: timeout}
	p := &player{
		conn: conn, cr: cr, br: bufio.NewReaderSize(cr, 64<<10), bw: bufio.NewWriterSize(conn, 4096),
		timeout: timeout, inChunk: 128, chunks: map[uint32]*chunkState{}, started: time.Now(),
	}
	p.lagFrom.Store(math.MaxInt64)
	return p
}

func (p *player) handshake() error {
	c0c1 := make([]byte, 1+handshakeSize)
	c0c1[0] = 3
	if _, err := rand.Read(c0c1[9:]); err != nil {
		return err
	}
	if _, err := p.conn.Write(c0c1); err != nil {
		return err
	}
	s := make([]byte, 1+2*handshakeSize)
	if _, err := io.ReadFull(p.br, s); err != nil {
		return err
	}
	if s[0] != 3 {
		return fmt.Errorf("server version %d, want 3", s[0])
	}
	_, err := p.conn.Write(s[1 : 1+handshakeSize]) // C2 echoes S1
	return err
}

func (p *player) startPlay(app, tcURL, name string) error {
	connect := amfEncode("connect", 1.0, map[string]any{
		"app": app, "flashVer": "LNX 9,0,124,2", "tcUrl": tcURL, "fpad": false,
		"capabilities": 15.0, "audioCodecs": 4071.0, "videoCodecs": 252.0, "videoFunction": 1.0,
	})
	if err := p.writeMessage(3, msgCommandAMF0, 0, connect); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	if _, err := p.waitCommand(1); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := p.writeMessage(3, msgCommandAMF0, 0, amfEncode("createStream", 2.0, nil)); err != nil {
		return fmt.Errorf("send createStream: %w", err)
	}
	res, err := p.waitCommand(2)
	if err != nil {
		return fmt.Errorf("createStream: %w", err)
	}
	if len(res) < 4 {
		return fmt.Errorf("createStream: reply without a stream id")
	}
	sid, ok := res[3].(float64)
	if !ok || sid < 0 || sid > math.MaxUint32 {
		return fmt.Errorf("createStream: bad stream id %v", res[3])
	}
	p.streamID = uint32(sid)
	play := amfEncode("play", 0.0, nil, name, -2000.0)
	if err := p.writeMessage(8, msgCommandAMF0, p.streamID, play); err != nil {
		return fmt.Errorf("send play: %w", err)
	}
	buf := make([]byte, 10) // SetBufferLength(stream, 3000 ms)
	binary.BigEndian.PutUint16(buf[0:], 3)
	binary.BigEndian.PutUint32(buf[2:], p.streamID)
	binary.BigEndian.PutUint32(buf[6:], 3000)
	if err := p.writeMessage(2, msgUserControl, 0, buf); err != nil {
		return fmt.Errorf("send buffer length: %w", err)
	}
	for range playStartWaitMsgs {
		m, err := p.readMessage()
		if err != nil {
			return fmt.Errorf("wait for first media: %w", err)
		}
		if m.isMedia {
			p.onMedia(m)
			return nil
		}
		if m.typeID == msgCommandAMF0 {
			vals, err := amfDecodeAll(m.payload)
			if err != nil {
				return fmt.Errorf("play reply: %w", err)
			}
			if name, _ := vals[0].(string); name == "onStatus" {
				code := statusCode(vals)
				switch {
				case strings.Contains(code, "Failed"), strings.Contains(code, "NotFound"),
					strings.Contains(code, "Rejected"), strings.Contains(code, "BadName"):
					return fmt.Errorf("play refused: %s", code)
				}
			}
		}
	}
	return errors.New("no media after many messages")
}

func statusCode(vals []any) string {
	for _, v := range vals {
		if obj, ok := v.(map[string]any); ok {
			if c, ok := obj["code"].(string); ok {
				return c
			}
		}
	}
	return ""
}

// waitCommand reads until the _result/_error of transaction txn.
func (p *player) waitCommand(txn float64) ([]any, error) {
	for range playStartWaitMsgs {
		m, err := p.readMessage()
		if err != nil {
			return nil, err
		}
		if m.typeID != msgCommandAMF0 {
			continue
		}
		vals, err := amfDecodeAll(m.payload)
		if err != nil {
			return nil, err
		}
		if len(vals) < 2 {
			continue
		}
		name, _ := vals[0].(string)
		id, _ := vals[1].(float64)
		if id != txn {
			continue
		}
		switch name {
		case "_result":
			return vals, nil
		case "_error":
			return nil, fmt.Errorf("server error: %s", statusCode(vals))
		}
	}
	return nil, fmt.Errorf("no reply to transaction %v", txn)
}

// message is a fully read RTMP message; payload is only kept for
// non-media types.
type message struct {
	typeID    uint8
	streamID  uint32
	timestamp uint32
	length    uint32
	payload   []byte
	isMedia   bool
}

// readMessage reads chunks until one message is complete, handling protocol
// control messages itself (they are still returned).
func (p *player) readMessage() (message, error) {
	for {
		m, done, err := p.readChunk()
		if err != nil {
			return message{}, err
		}
		if !done {
			continue
		}
		if err := p.control(m); err != nil {
			return message{}, err
		}
		return m, nil
	}
}

// readChunk reads one chunk. done is true when it completed a message.
func (p *player) readChunk() (message, bool, error) {
	b0, err := p.br.ReadByte()
	if err != nil {
		return message{}, false, err
	}
	format := b0 >> 6
	csid := uint32(b0 & 0x3f)
	switch csid {
	case 0:
		b, err := p.br.ReadByte()
		if err != nil {
			return message{}, false, err
		}
		csid = 64 + uint32(b)
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(p.br, b[:]); err != nil {
			return message{}, false, err
		}
		csid = 64 + uint32(b[0]) + uint32(b[1])*256
	}
	cs := p.chunks[csid]
	if cs == nil {
		if format != 0 {
			return message{}, false, fmt.Errorf("chunk stream %d starts with format %d", csid, format)
		}
		if len(p.chunks) >= maxChunkStreams {
			return message{}, false, fmt.Errorf("more than %d chunk streams", maxChunkStreams)
		}
		cs = &chunkState{}
		p.chunks[csid] = cs
	}
	var hdr [11]byte
	hlen := [4]int{11, 7, 3, 0}[format]
	if _, err := io.ReadFull(p.br, hdr[:hlen]); err != nil {
		return message{}, false, err
	}
	var ts uint32
	if format <= 2 {
		ts = uint32(hdr[0])<<16 | uint32(hdr[1])<<8 | uint32(hdr[2])
		cs.extended = ts == 0xFFFFFF
	}
	if format <= 1 {
		cs.length = uint32(hdr[3])<<16 | uint32(hdr[4])<<8 | uint32(hdr[5])
		cs.typeID = hdr[6]
	}
	if format == 0 {
		cs.streamID = binary.LittleEndian.Uint32(hdr[7:11])
	}
	if cs.extended {
		// Also present on format-3 chunks after an extended timestamp, as
		// nginx-rtmp, MediaMTX and librtmp send them.
		var ext [4]byte
		if _, err := io.ReadFull(p.br, ext[:]); err != nil {
			return message{}, false, err
		}
		if format <= 2 {
			ts = binary.BigEndian.Uint32(ext[:])
		}
	}
	if cs.remaining == 0 { // first chunk of a new message
		switch format {
		case 0:
			cs.ts, cs.delta = ts, 0
		case 1, 2:
			cs.delta = ts
			cs.ts += ts
		case 3:
			cs.ts += cs.delta
		}
		if cs.length == 0 {
			return message{typeID: cs.typeID, streamID: cs.streamID, timestamp: cs.ts}, true, nil
		}
		cs.remaining = cs.length
		cs.keep = cs.typeID != msgAudio && cs.typeID != msgVideo
		if cs.keep {
			if cs.length > maxKeptMessage {
				return message{}, false, fmt.Errorf("message type %d of %d bytes exceeds %d", cs.typeID, cs.length, maxKeptMessage)
			}
			cs.buf = make([]byte, 0, cs.length)
		}
	}
	n := min(cs.remaining, p.inChunk)
	if cs.keep {
		start := len(cs.buf)
		cs.buf = cs.buf[:start+int(n)]
		if _, err := io.ReadFull(p.br, cs.buf[start:]); err != nil {
			return message{}, false, err
		}
	} else if _, err := p.br.Discard(int(n)); err != nil {
		return message{}, false, err
	}
	cs.remaining -= n
	if err := p.maybeAck(); err != nil {
		return message{}, false, err
	}
	if cs.remaining > 0 {
		return message{}, false, nil
	}
	m := message{typeID: cs.typeID, streamID: cs.streamID, timestamp: cs.ts, length: cs.length, payload: cs.buf}
	m.isMedia = cs.typeID == msgAudio || cs.typeID == msgVideo || cs.typeID == msgAggregate
	cs.buf = nil
	return m, true, nil
}

// control applies protocol control messages and answers pings.
func (p *player) control(m message) error {
	switch m.typeID {
	case msgSetChunkSize:
		if len(m.payload) < 4 {
			return errors.New("short SetChunkSize")
		}
		size := binary.BigEndian.Uint32(m.payload) & 0x7fffffff
		if size < 1 || size > maxChunkSize {
			return fmt.Errorf("chunk size %d out of range", size)
		}
		p.inChunk = size
	case msgAbort:
		if len(m.payload) >= 4 {
			if cs := p.chunks[binary.BigEndian.Uint32(m.payload)]; cs != nil {
				cs.remaining, cs.buf = 0, nil
			}
		}
	case msgWindowAckSize:
		if len(m.payload) >= 4 {
			p.window = binary.BigEndian.Uint32(m.payload)
		}
	case msgUserControl:
		if len(m.payload) < 2 {
			return nil
		}
		switch binary.BigEndian.Uint16(m.payload) {
		case 1: // StreamEOF
			if len(m.payload) >= 6 && binary.BigEndian.Uint32(m.payload[2:]) == p.streamID && p.haveMedia {
				return ErrStreamEnded
			}
		case 6: // PingRequest → PingResponse with the same timestamp
			if len(m.payload) >= 6 {
				resp := make([]byte, 6)
				binary.BigEndian.PutUint16(resp, 7)
				copy(resp[2:], m.payload[2:6])
				p.pings++
				return p.writeMessage(2, msgUserControl, 0, resp)
			}
		}
	}
	return nil
}

// maybeAck sends an Acknowledgement when the bytes received since the last
// one reach the server's window.
func (p *player) maybeAck() error {
	if p.window == 0 || p.cr.n-p.lastAck < uint64(p.window) {
		return nil
	}
	p.lastAck = p.cr.n
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(p.cr.n))
	p.acksSent++
	return p.writeMessage(2, msgAck, 0, b[:])
}

// writeMessage writes one message in chunks of clientChunkSize.
func (p *player) writeMessage(csid uint8, typeID uint8, streamID uint32, payload []byte) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	var h [12]byte
	h[0] = csid & 0x3f
	n := len(payload)
	h[4], h[5], h[6] = byte(n>>16), byte(n>>8), byte(n)
	h[7] = typeID
	binary.LittleEndian.PutUint32(h[8:], streamID)
	if _, err := p.bw.Write(h[:]); err != nil {
		return err
	}
	for i := 0; i < n; i += clientChunkSize {
		if i > 0 {
			if err := p.bw.WriteByte(0xC0 | csid&0x3f); err != nil {
				return err
			}
		}
		if _, err := p.bw.Write(payload[i:min(n, i+clientChunkSize)]); err != nil {
			return err
		}
	}
	return p.bw.Flush()
}
