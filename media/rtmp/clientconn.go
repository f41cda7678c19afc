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
	"time"

	"github.com/portier/portier/media/rtmp/amf0"
)

// ClientConfig configures Dial. Zero values select the defaults.
type ClientConfig struct {
	HandshakeTimeout time.Duration // default 10s
	ReadTimeout      time.Duration // idle read deadline, default 30s
	WriteTimeout     time.Duration // default 10s
	ChunkSize        uint32        // outbound chunk size, default DefaultChunkSize
	WindowAckSize    uint32        // default DefaultWindowAckSize
	MaxMessageSize   uint32        // default DefaultMaxMessageSize
	FlashVer         string        // default "FMLE/3.0 (compatible; Portier)"
	Logger           *slog.Logger
}

// ClientConn is the client side of an RTMP connection that publishes or
// plays one stream.
type ClientConn struct {
	*conn
	cfg         ClientConfig
	streamID    uint32
	txn         float64
	publishName string
	playing     bool

	// publishing: a background goroutine reads the server's control traffic
	bgDone chan struct{}
	bgMu   sync.Mutex
	bgErr  error
}

// Dial connects to rawURL ("rtmp://host[:port]/app[?query]"), performs the
// handshake and the connect command. The query, if any, is sent in the app
// and the tcUrl.
func Dial(ctx context.Context, rawURL string, cfg ClientConfig) (*ClientConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rtmp dial: %w", err)
	}
	if u.Scheme != "rtmp" {
		return nil, fmt.Errorf("rtmp dial %q: scheme must be rtmp", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1935")
	}
	app := strings.Trim(u.Path, "/")
	if app == "" {
		return nil, fmt.Errorf("rtmp dial: URL has no application path")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ChunkSize == 0 || cfg.ChunkSize > MaxChunkSize {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.WindowAckSize == 0 {
		cfg.WindowAckSize = DefaultWindowAckSize
	}
	if cfg.FlashVer == "" {
		cfg.FlashVer = "FMLE/3.0 (compatible; Portier)"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("rtmp dial: %w", err)
	}
	c := &ClientConn{conn: newConn(nc, cfg.MaxMessageSize, cfg.ReadTimeout, cfg.WriteTimeout, cfg.Logger), cfg: cfg}
	stop := c.abortOn(ctx)
	defer stop()
	c.setDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if err := clientHandshake(c.rw()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("rtmp handshake: %w", ctxErr(ctx, err))
	}
	c.setDeadline(time.Time{})
	if err := c.connect(app, u); err != nil {
		nc.Close()
		return nil, ctxErr(ctx, err)
	}
	return c, nil
}

func (c *ClientConn) connect(app string, u *url.URL) error {
	if u.RawQuery != "" {
		app += "?" + u.RawQuery
	}
	tc := *u
	tc.User = nil
	if err := c.write(appendUint32Control(nil, TypeWindowAckSize, c.cfg.WindowAckSize)); err != nil {
		return err
	}
	if err := c.setOutChunkSize(c.cfg.ChunkSize); err != nil {
		return err
	}
	obj := amf0.Object{
		"app":            app,
		"type":           "nonprivate",
		"flashVer":       c.cfg.FlashVer,
		"tcUrl":          tc.String(),
		"fpad":           false,
		"capabilities":   15.0,
		"audioCodecs":    3191.0,
		"videoCodecs":    252.0,
		"videoFunction":  1.0,
		"objectEncoding": 0.0,
	}
	_, err := c.call("connect", obj)
	return err
}

// call sends a command with a fresh transaction id on stream 0 and waits
// for its _result or _error. Messages other than the answer are handled
// (control) or dropped (commands the server sends unprompted).
func (c *ClientConn) call(name string, args ...any) ([]any, error) {
	c.txn++
	txn := c.txn
	if err := c.writeCommand(CSIDCommand, 0, append([]any{name, txn}, args...)...); err != nil {
		return nil, err
	}
	for {
		msg, err := c.readMessage()
		if err != nil {
			return nil, fmt.Errorf("rtmp %s: %w", name, err)
		}
		if msg.Type != TypeCommandAMF0 {
			continue
		}
		cmd, rtxn, rargs, err := decodeCommand(msg.Payload)
		if err != nil {
			return nil, err
		}
		if rtxn != txn {
			continue
		}
		switch cmd {
		case "_result":
			return rargs, nil
		case "_error":
			return nil, statusFromArgs(rargs, "error")
		}
	}
}

// statusFromArgs builds a StatusError from the info object of a command.
func statusFromArgs(args []any, defLevel string) *StatusError {
	e := &StatusError{Level: defLevel}
	for _, a := range args {
		if obj, ok := a.(amf0.Object); ok {
			if code, ok := obj["code"].(string); ok {
				e.Code = code
				e.Level, _ = obj["level"].(string)
				e.Description, _ = obj["description"].(string)
				return e
			}
		}
	}
	e.Code = "unknown"
	return e
}

func (c *ClientConn) createStream() error {
	res, err := c.call("createStream", nil)
	if err != nil {
		return err
	}
	for _, v := range res {
		if f, ok := v.(float64); ok {
			c.streamID = uint32(f)
			return nil
		}
	}
	return errors.New("rtmp createStream: no stream id in the answer")
}

// Publish creates a stream and publishes name (which may carry a query,
// "name?key=abc") as a live stream. It returns a *StatusError when the
// server refuses. Afterwards a background goroutine handles the server's
// control traffic; send media with WriteMessage.
func (c *ClientConn) Publish(ctx context.Context, name string) error {
	stop := c.abortOn(ctx)
	defer stop()
	// releaseStream and FCPublish are courtesy calls many servers never
	// answer: send them without waiting (createStream skips their answers).
	for _, cmd := range []string{"releaseStream", "FCPublish"} {
		c.txn++
		if err := c.writeCommand(CSIDCommand, 0, cmd, c.txn, nil, name); err != nil {
			return err
		}
	}
	if err := c.createStream(); err != nil {
		return ctxErr(ctx, err)
	}
	if err := c.writeCommand(CSIDStatus, c.streamID, "publish", 0.0, nil, name, "live"); err != nil {
		return err
	}
	if err := c.waitStatus("NetStream.Publish.Start"); err != nil {
		return ctxErr(ctx, err)
	}
	c.publishName = name
	// The server may stay silent for long stretches while we publish: do
	// not apply the idle read deadline to its control traffic.
	c.readTimeout = 0
	c.setDeadline(time.Time{})
	c.bgDone = make(chan struct{})
	go c.publishReadLoop()
	return nil
}

// waitStatus reads until an onStatus with code want (nil) or an error status.
func (c *ClientConn) waitStatus(want string) error {
	for {
		msg, err := c.readMessage()
		if err != nil {
			return err
		}
		switch msg.Type {
		case TypeCommandAMF0:
			st, ok := parseStatus(msg.Payload)
			if !ok {
				continue
			}
			if st.Level == "error" {
				return st
			}
			if st.Code == want {
				return nil
			}
		case TypeAudio, TypeVideo, TypeDataAMF0:
			c.pending = append(c.pending, msg)
		}
	}
}

// parseStatus decodes an onStatus command.
func parseStatus(payload []byte) (*StatusError, bool) {
	name, _, args, err := decodeCommand(payload)
	if err != nil || name != "onStatus" {
		return nil, false
	}
	return statusFromArgs(args, "status"), true
}

func (c *ClientConn) publishReadLoop() {
	defer close(c.bgDone)
	for {
		msg, err := c.readMessage()
		if err != nil {
			c.setBgErr(err)
			return
		}
		if msg.Type == TypeCommandAMF0 {
			if st, ok := parseStatus(msg.Payload); ok && st.Level == "error" {
				c.setBgErr(st)
				_ = c.nc.Close()
				return
			}
		}
	}
}

func (c *ClientConn) setBgErr(err error) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgErr == nil {
		c.bgErr = err
	}
}

// Play creates a stream and plays name. It returns a *StatusError when the
// server refuses (for example NetStream.Play.StreamNotFound). Read media
// with ReadMessage.
func (c *ClientConn) Play(ctx context.Context, name string) error {
	stop := c.abortOn(ctx)
	defer stop()
	if err := c.createStream(); err != nil {
		return ctxErr(ctx, err)
	}
	if err := c.writeCommand(CSIDStatus, c.streamID, "play", 0.0, nil, name, -2.0); err != nil {
		return err
	}
	if err := c.write(appendUserControl(nil, EventSetBufferLength, c.streamID, 3000)); err != nil {
		return err
	}
	if err := c.waitStatus("NetStream.Play.Start"); err != nil {
		return ctxErr(ctx, err)
	}
	c.setDeadline(time.Time{})
	c.playing = true
	return nil
}

// ReadMessage returns the next audio, video or data message of a played
// stream. It returns io.EOF when the server ends the stream
// (NetStream.Play.Stop, UnpublishNotify or Complete) and a *StatusError on
// an error status.
func (c *ClientConn) ReadMessage() (Message, error) {
	for {
		msg, err := c.readMessage()
		if err != nil {
			return Message{}, err
		}
		switch msg.Type {
		case TypeAudio, TypeVideo:
			return msg, nil
		case TypeDataAMF0:
			if name, _, err := amf0.Decode(msg.Payload); err == nil && name == "|RtmpSampleAccess" {
				continue
			}
			return msg, nil
		case TypeCommandAMF0:
			st, ok := parseStatus(msg.Payload)
			if !ok {
				continue
			}
			if st.Level == "error" {
				return Message{}, st
			}
			switch st.Code {
			case "NetStream.Play.Stop", "NetStream.Play.UnpublishNotify", "NetStream.Play.Complete":
				return Message{}, io.EOF
			}
		}
	}
}

// WriteMessage sends a message; a zero StreamID selects the published
// stream. When publishing, it returns the error that ended the connection
// if the server closed it or sent an error status.
func (c *ClientConn) WriteMessage(msg Message) error {
	if c.bgDone != nil {
		select {
		case <-c.bgDone:
			c.bgMu.Lock()
			err := c.bgErr
			c.bgMu.Unlock()
			return fmt.Errorf("rtmp: connection ended: %w", err)
		default:
		}
	}
	if msg.StreamID == 0 {
		msg.StreamID = c.streamID
	}
	return c.writeMessage(msg)
}

// WriteChunks writes pre-chunked bytes made with AppendChunks using
// StreamID and ChunkSize.
func (c *ClientConn) WriteChunks(bufs ...[]byte) error { return c.write(bufs...) }

// StreamID returns the message stream id from createStream.
func (c *ClientConn) StreamID() uint32 { return c.streamID }

// ChunkSize returns the outbound chunk size.
func (c *ClientConn) ChunkSize() uint32 { return c.outChunkSize.Load() }

// Close ends the session: for a publisher FCUnpublish and deleteStream are
// sent first so the server sees a clean unpublish.
func (c *ClientConn) Close() error {
	if c.bgDone != nil {
		select {
		case <-c.bgDone:
		default:
			_ = c.writeCommand(CSIDCommand, 0, "FCUnpublish", 0.0, nil, c.publishName)
			_ = c.writeCommand(CSIDCommand, 0, "deleteStream", 0.0, nil, float64(c.streamID))
		}
	}
	if c.playing {
		_ = c.writeCommand(CSIDCommand, 0, "deleteStream", 0.0, nil, float64(c.streamID))
	}
	err := c.nc.Close()
	if c.bgDone != nil {
		<-c.bgDone
	}
	return err
}
