// Package rtmpserver accepts RTMP connections and connects publishers and
// players to the stream hub: a publish becomes a stream.Publisher fed with the
// client's messages, a play becomes a stream.Reader whose units are written as
// RTMP chunks encoded once per unit and shared by every player.
package rtmpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/media/readpoll"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// Hub is what the server needs of the stream hub (*stream.Hub).
type Hub interface {
	Publish(path string, info stream.PublisherInfo) (*stream.Publisher, error)
	Read(ctx context.Context, path string, params stream.ReaderParams) (*stream.Reader, error)
}

var _ Hub = (*stream.Hub)(nil)

// AuthRequest is what a client asked to publish or play. Name may be a
// stream key: it must never be logged.
type AuthRequest struct {
	App      string
	Name     string
	RawQuery string
	Addr     string // client's address
	Protocol string // "rtmp"
}

// AuthResult is the answer to an AuthRequest.
type AuthResult struct {
	Allow bool
	// Name is the public stream name to publish or play under; empty means
	// the requested name.
	Name string
	// Reason is shown to a refused client.
	Reason string
	// Takeover lets a publish replace a live publisher of the same stream.
	Takeover bool
	// Tag (publishes) is the authoriser's name for this publish: stored in
	// the hub's PublisherInfo and passed back to PublishDone.
	Tag string
}

// AuthorizeFunc decides on a publish or play. An error means the decision
// could not be made; the client is refused.
type AuthorizeFunc func(ctx context.Context, req AuthRequest) (AuthResult, error)

// Params configures a Server. Zero values select the defaults.
type Params struct {
	// Addr is the listen address ("127.0.0.1:0" picks a free port).
	Addr string
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	Hub      Hub
	// Authorize decides on publishes; nil allows every publish under the
	// requested name.
	Authorize AuthorizeFunc
	// AuthorizePlay decides on plays; nil allows every play.
	AuthorizePlay AuthorizeFunc
	// PublishDone is called once a publish that was allowed has ended,
	// with the Tag its authorisation gave.
	PublishDone func(app, name, tag string)

	MaxConns         int           // default 10000; further connections are closed at once
	HandshakeTimeout time.Duration // default 10s (handshake through publish/play)
	ReadTimeout      time.Duration // idle publisher read deadline, default 30s
	WriteTimeout     time.Duration // default 10s: a player that takes no data is closed
	ChunkSize        uint32        // outbound chunk size, default rtmp.DefaultChunkSize
	// PlayWait is how long a player waits for a stream that has no
	// publisher yet (0: refuse at once, unless the hub starts an on-demand
	// source).
	PlayWait time.Duration
	// Reader bounds each player's queue (see stream.ReaderParams). Its
	// CoalesceFrames defaults to one write per video frame; negative
	// turns coalescing off.
	Reader stream.ReaderParams
	// IsInternal, when set, tells from the play query whether a player is
	// the system's own (task inputs, thumbnail grabs): they are not
	// viewers; their readers are marked stream.ReaderParams.Internal.
	// Anyone can put a marker in a URL: the function must check a proof.
	IsInternal func(path string, query url.Values) bool
	Logger     *slog.Logger
}

// Server is an RTMP server. Its lifecycle is New, Start, Close.
type Server struct {
	p   Params
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	ln     net.Listener
	wg     sync.WaitGroup
	nextID atomic.Uint64
	active atomic.Int64
	// poll watches playing connections for what their players send (nil
	// where epoll is missing: each player then has a reading goroutine).
	poll *readpoll.Poller

	mu     sync.Mutex // guards conns and closed; never held across I/O
	conns  map[*rtmp.ServerConn]struct{}
	closed bool
}

// New validates params and returns a server that is not yet listening.
func New(p Params) (*Server, error) {
	if p.Hub == nil {
		return nil, errors.New("rtmpserver: Params.Hub is required")
	}
	if p.Addr == "" && p.Listener == nil {
		return nil, errors.New("rtmpserver: Params.Addr is required (for example 127.0.0.1:1935)")
	}
	if p.MaxConns <= 0 {
		// A player costs about 20 KB and its share of a 2 Mbps stream's
		// CPU; 1000 refused the 1000th player of a stream (the publisher
		// holds a connection too).
		p.MaxConns = 10000
	}
	if p.HandshakeTimeout <= 0 {
		p.HandshakeTimeout = 10 * time.Second
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = 30 * time.Second
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = rtmp.DefaultChunkSize
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		p:      p,
		log:    p.Logger.With("component", "rtmp"),
		ctx:    ctx,
		cancel: cancel,
		conns:  map[*rtmp.ServerConn]struct{}{},
	}, nil
}

// Start listens and serves connections in the background.
func (s *Server) Start() error {
	ln := s.p.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", s.p.Addr)
		if err != nil {
			return fmt.Errorf("rtmp listen on %s: %w", s.p.Addr, err)
		}
	}
	s.ln = ln
	if poll, err := readpoll.New(); err == nil {
		s.poll = poll
	} else {
		s.log.Debug("rtmp players read by a goroutine each", "reason", err)
	}
	s.log.Info("rtmp server listening", "addr", ln.Addr().String())
	s.wg.Add(1)
	go s.acceptLoop()
	return nil
}

// Addr returns the listening address (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Conns returns the number of open connections.
func (s *Server) Conns() int { return int(s.active.Load()) }

// Close stops listening, closes every connection and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*rtmp.ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
	if s.poll != nil {
		_ = s.poll.Close()
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (e.g. out of file descriptors): back off.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rtmp accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if s.active.Add(1) > int64(s.p.MaxConns) {
			s.active.Add(-1)
			s.log.Warn("rtmp connection refused: too many connections", "remote", nc.RemoteAddr().String(), "max", s.p.MaxConns)
			_ = nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			if s.serve(nc) {
				return // a player, which ends on its own (see player)
			}
			s.active.Add(-1)
			s.wg.Done()
		}()
	}
}

// track registers c so Close can reach it; it reports false when the
// server is closing.
func (s *Server) track(c *rtmp.ServerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *rtmp.ServerConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// session is what the closing log line reports about a connection.
type session struct {
	kind   string
	app    string
	name   string // the public name; empty until authorised (may be a key)
	reason string
	err    error
}

// serve runs a connection until it ends, but for a play that has started:
// it then reports true, and the connection's player ends it (see player),
// releasing its place in active and wg.
func (s *Server) serve(nc net.Conn) (playing bool) {
	id := s.nextID.Add(1)
	log := s.log.With("conn", id) // media/rtmp adds the remote address itself
	cl := closing{remote: nc.RemoteAddr().String(), start: time.Now(), log: log}
	c := rtmp.NewServerConn(nc, rtmp.ServerConfig{
		HandshakeTimeout: s.p.HandshakeTimeout,
		ReadTimeout:      s.p.ReadTimeout,
		WriteTimeout:     s.p.WriteTimeout,
		ChunkSize:        s.p.ChunkSize,
		Logger:           log,
		Poller:           s.poll,
	})
	if !s.track(c) {
		_ = c.Close()
		return false
	}

	req, err := c.Accept(s.ctx)
	if err != nil {
		cl.reason, cl.err = "handshake or connect failed", err
		if errors.Is(err, rtmp.ErrChunkLimit) {
			cl.reason = "chunk limits exceeded before authorisation"
		}
	} else {
		cl.kind, cl.app = req.Kind.String(), req.App
		switch req.Kind {
		case rtmp.KindPublish:
			s.publish(c, req, &cl.session, log)
		case rtmp.KindPlay:
			if p := s.play(c, req, &cl.session, log); p != nil {
				p.start(cl)
				return true
			}
		}
	}
	s.closeConn(c, cl)
	return false
}

// closing is what a connection's end needs to report it.
type closing struct {
	session
	remote string
	start  time.Time
	log    *slog.Logger
}

// closeConn closes c, forgets it and logs why it ended.
func (s *Server) closeConn(c *rtmp.ServerConn, cl closing) {
	_ = c.Close()
	s.untrack(c)
	attrs := []any{"remote", cl.remote, "kind", cl.kind, "app", cl.app, "name", cl.name, "reason", cl.reason}
	if cl.kind != rtmp.KindPlay.String() {
		// A player's bytes are counted by the connection's own reads,
		// which may still be running: only publishers report bytes in.
		attrs = append(attrs, "bytes_in", c.BytesRead())
	}
	attrs = append(attrs, "bytes_out", c.BytesWritten(), "duration", time.Since(cl.start).Round(time.Millisecond))
	if cl.err != nil {
		attrs = append(attrs, "err", cl.err.Error())
	}
	cl.log.Info("rtmp connection closed", attrs...)
}

func (s *Server) authorize(fn AuthorizeFunc, c *rtmp.ServerConn, req *rtmp.Request) (AuthResult, error) {
	if fn == nil {
		return AuthResult{Allow: true, Name: req.Name}, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	res, err := fn(ctx, AuthRequest{
		App:      req.App,
		Name:     req.Name,
		RawQuery: req.RawQuery,
		Addr:     c.RemoteAddr().String(),
		Protocol: "rtmp",
	})
	if err != nil {
		return AuthResult{}, err
	}
	if res.Name == "" {
		res.Name = req.Name
	}
	return res, nil
}
