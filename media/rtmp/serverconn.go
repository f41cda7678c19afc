package rtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portier/portier/media/readpoll"
	"github.com/portier/portier/media/rtmp/amf0"
)

// ServerConfig configures a ServerConn. Zero values select the defaults.
type ServerConfig struct {
	HandshakeTimeout time.Duration // default 10s: a handshake that never completes is closed
	ReadTimeout      time.Duration // idle read deadline, default 30s
	WriteTimeout     time.Duration // default 10s
	ChunkSize        uint32        // outbound chunk size, default DefaultChunkSize
	WindowAckSize    uint32        // acknowledgement window asked of the peer, default DefaultWindowAckSize
	MaxMessageSize   uint32        // largest message accepted, default DefaultMaxMessageSize
	// PreAuthLimits bound partially received messages until a publish is
	// accepted (and for players throughout), PublishLimits after
	// AcceptPublish. Defaults: DefaultPreAuthLimits, DefaultPublishLimits.
	PreAuthLimits ChunkLimits
	PublishLimits ChunkLimits
	Logger        *slog.Logger
	// Poller, when set, watches a playing connection for what its player
	// sends, instead of a goroutine per player blocked in a read: see
	// AcceptPlay. Connections it cannot watch (TLS) read as without it.
	Poller *readpoll.Poller
}

func (c *ServerConfig) defaults() {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.ChunkSize == 0 || c.ChunkSize > MaxChunkSize {
		c.ChunkSize = DefaultChunkSize
	}
	if c.WindowAckSize == 0 {
		c.WindowAckSize = DefaultWindowAckSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.PreAuthLimits == (ChunkLimits{}) {
		c.PreAuthLimits = DefaultPreAuthLimits
	}
	if c.PublishLimits == (ChunkLimits{}) {
		c.PublishLimits = DefaultPublishLimits
	}
}

// RequestKind says whether a client wants to publish or play.
type RequestKind uint8

// Request kinds.
const (
	KindPublish RequestKind = iota + 1
	KindPlay
)

func (k RequestKind) String() string {
	switch k {
	case KindPublish:
		return "publish"
	case KindPlay:
		return "play"
	}
	return "unknown"
}

// Request is what a client asked for in connect and publish/play.
type Request struct {
	Kind     RequestKind
	App      string     // connect's app without query, e.g. "live"
	Name     string     // stream name without query, e.g. "test"
	Query    url.Values // query of the tcUrl/app and of the stream name, merged
	RawQuery string     // the same query in encoded form
	TcURL    string
	// FlashVer is the client's connect flashVer: its software, e.g.
	// "FMLE/3.0 (compatible; Lavf61.7.100)" from ffmpeg. Client-supplied.
	FlashVer    string
	PublishType string // publish only: "live", "record" or "append"
	StreamID    uint32 // message stream id of the publish/play
}

// ServerConn is the server side of one RTMP connection.
type ServerConn struct {
	*conn
	cfg      ServerConfig
	req      *Request
	streamID uint32

	// watch is the playing connection's registration with cfg.Poller (nil
	// while it has none): finish stops it before closing the socket.
	watch atomic.Pointer[readpoll.Watch]

	done      chan struct{}
	closeOnce sync.Once
	afterMu   sync.Mutex
	afterDone func() // see AfterDone
	errMu     sync.Mutex
	err       error
}

// NewServerConn wraps an accepted connection.
func NewServerConn(nc net.Conn, cfg ServerConfig) *ServerConn {
	cfg.defaults()
	c := &ServerConn{
		conn: newConn(nc, cfg.MaxMessageSize, cfg.ReadTimeout, cfg.WriteTimeout, cfg.Logger),
		cfg:  cfg,
		done: make(chan struct{}),
	}
	// Nothing is authorised yet: a peer gets only what commands need.
	c.cr.SetLimits(cfg.PreAuthLimits)
	return c
}

// Accept performs the handshake and answers commands until the client asks
// to publish or play. Cancelling ctx aborts it and closes the connection.
func (c *ServerConn) Accept(ctx context.Context) (*Request, error) {
	stop := c.abortOn(ctx)
	defer stop()
	c.setDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if err := serverHandshake(c.rw()); err != nil {
		c.Close()
		return nil, fmt.Errorf("rtmp handshake: %w", ctxErr(ctx, err))
	}
	c.setDeadline(time.Time{})
	req, err := c.acceptCommands()
	if err != nil {
		c.Close()
		return nil, ctxErr(ctx, err)
	}
	c.req = req
	return req, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func (c *ServerConn) acceptCommands() (*Request, error) {
	var app, tcURL, flashVer string
	connected := false
	for {
		msg, err := c.readMessage()
		if err != nil {
			return nil, err
		}
		if msg.Type != TypeCommandAMF0 {
			continue // e.g. @setDataFrame before publish: nothing to do yet
		}
		name, txn, args, err := decodeCommand(msg.Payload)
		if err != nil {
			return nil, err
		}
		switch name {
		case "connect":
			if len(args) == 0 {
				return nil, errors.New("rtmp: connect without command object")
			}
			obj, _ := args[0].(amf0.Object)
			app, _ = obj["app"].(string)
			tcURL, _ = obj["tcUrl"].(string)
			flashVer, _ = obj["flashVer"].(string)
			if err := c.replyConnect(txn); err != nil {
				return nil, err
			}
			connected = true
		case "createStream":
			c.streamID = PlayStreamID
			if err := c.writeCommand(CSIDCommand, 0, "_result", txn, nil, float64(c.streamID)); err != nil {
				return nil, err
			}
		case "publish", "play":
			if !connected {
				return nil, fmt.Errorf("rtmp: %s before connect", name)
			}
			if len(args) < 2 {
				return nil, fmt.Errorf("rtmp: %s without a stream name", name)
			}
			streamName, _ := args[1].(string)
			req := buildRequest(app, tcURL, streamName)
			req.FlashVer = flashVer
			req.StreamID = msg.StreamID
			if req.StreamID == 0 {
				req.StreamID = PlayStreamID
			}
			c.streamID = req.StreamID
			if name == "publish" {
				req.Kind = KindPublish
				req.PublishType = "live"
				if len(args) >= 3 {
					if t, ok := args[2].(string); ok && t != "" {
						req.PublishType = t
					}
				}
			} else {
				req.Kind = KindPlay
			}
			return req, nil
		case "getStreamLength":
			// ffmpeg reads a duration from the answer; 0 means live.
			if err := c.writeCommand(CSIDCommand, 0, "_result", txn, nil, 0.0); err != nil {
				return nil, err
			}
		default:
			// releaseStream, FCPublish, _checkbw,
			// FCSubscribe...: acknowledge when a reply is expected.
			if txn != 0 {
				if err := c.writeCommand(CSIDCommand, 0, "_result", txn, nil, amf0.Undefined{}); err != nil {
					return nil, err
				}
			}
		}
	}
}

func (c *ServerConn) replyConnect(txn float64) error {
	var b []byte
	b = appendUint32Control(b, TypeWindowAckSize, c.cfg.WindowAckSize)
	b = appendSetPeerBandwidth(b, c.cfg.WindowAckSize, 2)
	if err := c.write(b); err != nil {
		return err
	}
	if err := c.setOutChunkSize(c.cfg.ChunkSize); err != nil {
		return err
	}
	props := amf0.Object{"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0}
	info := amf0.Object{
		"level":          "status",
		"code":           "NetConnection.Connect.Success",
		"description":    "Connection succeeded.",
		"objectEncoding": 0.0,
	}
	return c.writeCommand(CSIDCommand, 0, "_result", txn, props, info)
}

// buildRequest splits queries off the app, tcUrl and stream name.
func buildRequest(app, tcURL, name string) *Request {
	req := &Request{TcURL: tcURL, Query: url.Values{}}
	var raws []string
	if i := strings.IndexByte(app, '?'); i >= 0 {
		raws = append(raws, app[i+1:])
		app = app[:i]
	} else if u, err := url.Parse(tcURL); err == nil && u.RawQuery != "" {
		raws = append(raws, u.RawQuery)
	}
	if i := strings.IndexByte(name, '?'); i >= 0 {
		raws = append(raws, name[i+1:])
		name = name[:i]
	}
	req.App = strings.Trim(app, "/")
	req.Name = name
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		q, _ := url.ParseQuery(raw)
		for k, vs := range q {
			req.Query[k] = append(req.Query[k], vs...)
		}
		if req.RawQuery != "" {
			req.RawQuery += "&"
		}
		req.RawQuery += raw
	}
	return req
}

// StreamID returns the message stream id media for this connection uses.
func (c *ServerConn) StreamID() uint32 { return c.streamID }

// ChunkSize returns the outbound chunk size announced to the client.
func (c *ServerConn) ChunkSize() uint32 { return c.outChunkSize.Load() }

// RemoteAddr returns the client's address.
func (c *ServerConn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// BytesRead returns the number of bytes received after the handshake.
func (c *ServerConn) BytesRead() uint64 { return c.cr.BytesRead() }

// BytesWritten returns the number of bytes sent after the handshake.
func (c *ServerConn) BytesWritten() uint64 { return c.written.Load() }

// AckedBytes returns the byte count (modulo 2^32) of the client's last
// Acknowledgement: BytesWritten minus it is how much the client has not
// yet confirmed reading.
func (c *ServerConn) AckedBytes() uint32 { return c.peerAcked.Load() }

// Request returns the request Accept returned, or nil.
func (c *ServerConn) Request() *Request { return c.req }

// AcceptPublish tells the client its publish started.
func (c *ServerConn) AcceptPublish() error {
	if c.req == nil || c.req.Kind != KindPublish {
		return errors.New("rtmp: AcceptPublish without a publish request")
	}
	// The publish is authorised: room for keyframes. AcceptPublish runs on
	// the goroutine that reads (the reader is not shared). Its 4 KB read
	// buffer stays: 64 KB made no difference to the reads an ffmpeg
	// publish takes (1,453 and 1,422 in 5 s, strace), which follow the
	// encoder's writes.
	c.cr.SetLimits(c.cfg.PublishLimits)
	if err := c.write(appendUserControl(nil, EventStreamBegin, c.streamID)); err != nil {
		return err
	}
	return c.writeStatus(c.streamID, "status", "NetStream.Publish.Start", c.req.Name+" is now published.")
}

// ReadMessage returns the publisher's next audio, video or data message.
// It returns io.EOF when the client unpublishes or closes the stream.
func (c *ServerConn) ReadMessage() (Message, error) {
	for {
		msg, err := c.readMessage()
		if err != nil {
			return Message{}, err
		}
		switch msg.Type {
		case TypeAudio, TypeVideo, TypeDataAMF0:
			return msg, nil
		case TypeCommandAMF0:
			name, txn, _, err := decodeCommand(msg.Payload)
			if err != nil {
				return Message{}, err
			}
			switch name {
			case "FCUnpublish", "deleteStream", "closeStream":
				return Message{}, io.EOF
			default:
				if txn != 0 {
					if err := c.writeCommand(CSIDCommand, 0, "_result", txn, nil, amf0.Undefined{}); err != nil {
						return Message{}, err
					}
				}
			}
		}
	}
}

// AcceptPlay starts playback: StreamBegin, NetStream.Play.Reset,
// NetStream.Play.Start and |RtmpSampleAccess. From then on the client's
// messages (acknowledgements, pings, commands) are read as they come, and
// Done is closed when the client leaves: by the ServerConfig.Poller, which
// starts a short-lived goroutine when the player has sent something, or
// else by a goroutine of the connection's own.
func (c *ServerConn) AcceptPlay() error {
	if c.req == nil || c.req.Kind != KindPlay {
		return errors.New("rtmp: AcceptPlay without a play request")
	}
	var b []byte
	b = appendUserControl(b, EventStreamIsRecord, c.streamID)
	b = appendUserControl(b, EventStreamBegin, c.streamID)
	if err := c.write(b); err != nil {
		return err
	}
	if err := c.writeStatus(c.streamID, "status", "NetStream.Play.Reset", "Playing and resetting "+c.req.Name+"."); err != nil {
		return err
	}
	if err := c.writeStatus(c.streamID, "status", "NetStream.Play.Start", "Started playing "+c.req.Name+"."); err != nil {
		return err
	}
	access, _ := amf0.EncodeAll(nil, "|RtmpSampleAccess", true, true)
	if err := c.writeMessage(Message{Type: TypeDataAMF0, StreamID: c.streamID, Payload: access}); err != nil {
		return err
	}
	// A player may legitimately send nothing for minutes (it acknowledges
	// only every window of bytes): its liveness shows in our writes, so the
	// idle read deadline does not apply while playing.
	c.readTimeout = 0
	c.setReadDeadline(time.Time{})
	// From here on a player sends only acknowledgements, pings and a
	// command or two: a small read buffer is enough (4 KB less per player).
	if br, ok := c.cr.rebuffer(c.rd, playReadBuffer); ok {
		old := c.br
		c.br = br
		old.Reset(nil)
		readBufs.Put(old)
	}
	if c.watchPlay() {
		return nil
	}
	go c.playReadLoop()
	return nil
}

// playReadBuffer is a playing connection's read buffer, in bytes (4 KB
// before the play).
const playReadBuffer = 512

// playMessageTimeout bounds how long a message a watched player has begun
// to send may take to arrive whole.
const playMessageTimeout = 10 * time.Second

// watchPlay hands the connection's reading to cfg.Poller. It reports false
// when there is none or it cannot watch this connection.
func (c *ServerConn) watchPlay() bool {
	sc, ok := c.nc.(syscall.Conn)
	if c.cfg.Poller == nil || !ok {
		return false
	}
	w, err := c.cfg.Poller.Watch(sc, func(w *readpoll.Watch) { go c.playRead(w) })
	if err != nil {
		return false
	}
	c.watch.Store(w)
	select {
	case <-c.done: // finish ran before the watch was stored
		w.Stop()
	default:
	}
	return true
}

// playRead reads what a watched player has sent (its socket became
// readable, or it hung up), then arms the watch for more.
func (c *ServerConn) playRead(w *readpoll.Watch) {
	err := c.readPlayerBuffered()
	if err == nil {
		if err = w.Rearm(); err == nil {
			return
		}
	}
	c.log.Debug("rtmp player read ended", "remote", c.nc.RemoteAddr().String(), "reason", err)
	c.finish(err)
}

// readPlayerBuffered reads a player's messages until nothing it sent is
// left to read: at least one, since the socket was reported readable.
func (c *ServerConn) readPlayerBuffered() error {
	c.setReadDeadline(time.Now().Add(playMessageTimeout))
	for {
		msg, ok, err := c.readOne()
		if err != nil {
			return err
		}
		if ok {
			if err := playerMessage(msg); err != nil {
				return err
			}
		}
		if c.br.Buffered() == 0 && len(c.pending) == 0 {
			c.setReadDeadline(time.Time{})
			return nil
		}
	}
}

// playReadLoop serves a player's control traffic until it leaves (for a
// connection the Poller does not watch).
func (c *ServerConn) playReadLoop() {
	var err error
	for {
		var msg Message
		if msg, err = c.readMessage(); err != nil {
			break
		}
		if err = playerMessage(msg); err != nil {
			break
		}
	}
	c.log.Debug("rtmp player read loop ended", "remote", c.nc.RemoteAddr().String(), "reason", err)
	c.finish(err)
}

// playerMessage handles a message from a playing client (protocol control
// is handled while reading): io.EOF when the client stops playing.
func playerMessage(msg Message) error {
	if msg.Type != TypeCommandAMF0 {
		return nil
	}
	name, _, _, err := decodeCommand(msg.Payload)
	if err != nil {
		return err
	}
	if name == "deleteStream" || name == "closeStream" {
		return io.EOF
	}
	return nil
}

// finish records why the connection ended, closes Done and the socket.
func (c *ServerConn) finish(err error) {
	c.closeOnce.Do(func() {
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.done)
		if w := c.watch.Load(); w != nil {
			w.Stop()
		}
		_ = c.nc.Close()
		c.afterMu.Lock()
		f := c.afterDone
		c.afterMu.Unlock()
		if f != nil {
			f()
		}
	})
}

// AfterDone arranges for f to be called once the connection has ended, or
// at once if it has: for an owner with no goroutine waiting on Done. f runs
// on the goroutine that ended the connection and must not block. Only the
// last f set is called.
func (c *ServerConn) AfterDone(f func()) {
	c.afterMu.Lock()
	select {
	case <-c.done:
		c.afterMu.Unlock()
		f()
		return
	default:
	}
	c.afterDone = f
	c.afterMu.Unlock()
}

// Done is closed when the connection has ended (a player left, or Close).
func (c *ServerConn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, once Done is closed.
func (c *ServerConn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// WriteChunks writes pre-chunked bytes (made by AppendChunks with this
// connection's StreamID and ChunkSize) with a single writev. It neither
// modifies nor retains bufs, so they can be shared between players. Each
// call is written whole: concurrent calls never interleave.
func (c *ServerConn) WriteChunks(bufs ...[]byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	if err := c.write(bufs...); err != nil {
		if err == errWriteShut {
			return ErrClosed
		}
		return err
	}
	return nil
}

// WriteMessage chunks and writes one message on this connection's stream.
func (c *ServerConn) WriteMessage(msg Message) error {
	if msg.StreamID == 0 && msg.Type >= TypeAudio {
		msg.StreamID = c.streamID
	}
	return c.writeMessage(msg)
}

// Reject refuses the pending publish or play with an error status (for
// example NetStream.Publish.BadName, NetStream.Publish.Unauthorized or
// NetStream.Play.StreamNotFound) and closes the connection gracefully so
// the client can print the description.
func (c *ServerConn) Reject(code, description string) error {
	err := c.writeStatus(c.streamID, "error", code, description)
	c.closeOnce.Do(func() {
		c.errMu.Lock()
		c.err = &StatusError{Level: "error", Code: code, Description: description}
		c.errMu.Unlock()
		close(c.done)
		_ = c.gracefulClose(2 * time.Second)
	})
	return err
}

// PlayEnd tells a player the stream has ended (NetStream.Play.UnpublishNotify,
// NetStream.Play.Stop and StreamEOF) and closes the connection once the
// player has closed its side, or after a short linger.
func (c *ServerConn) PlayEnd() error {
	err := c.writeStatus(c.streamID, "status", "NetStream.Play.UnpublishNotify", "The stream was unpublished.")
	if err == nil {
		err = c.writeStatus(c.streamID, "status", "NetStream.Play.Stop", "Stopped playing.")
	}
	if err == nil {
		err = c.write(appendUserControl(nil, EventStreamEOF, c.streamID))
	}
	// The play read loop owns the reader: half-close and let it observe the
	// client's close, bounded by a timer.
	if err == nil && c.shutWrite() {
		t := time.AfterFunc(2*time.Second, func() { c.finish(io.EOF) })
		<-c.done
		t.Stop()
		return nil
	}
	if err != nil {
		select {
		case <-c.done:
			if errors.Is(c.Err(), io.EOF) {
				// The player left on the first end message (ffmpeg and our
				// client stop at NetStream.Play.UnpublishNotify): the rest
				// had no one to reach, which is not a failure.
				return nil
			}
		default:
		}
	}
	c.finish(io.EOF)
	return err
}

// Close closes the connection immediately.
func (c *ServerConn) Close() error {
	c.finish(ErrClosed)
	return nil
}
