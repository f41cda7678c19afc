// Package rtsppull is a hub source that pulls a stream from an RTSP server
// (a camera, another media server) with a gortsplib client and publishes it
// into the hub under a path, reconnecting with exponential backoff when the
// server or the network fails. It replaces an ffmpeg process per pulled
// camera: the RTP is depacketised once (media/rtsp's Ingest), the same way
// as an RTSP publish.
package rtsppull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/media/stream"
)

// Defaults for Params zero values.
const (
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultReadTimeout = 10 * time.Second
	// stableAfter: a session that played this long resets the backoff.
	stableAfter = 10 * time.Second
)

// Protocol is the hub publisher protocol of a pulled stream.
const Protocol = "rtsp-pull"

// Params configures a Puller.
type Params struct {
	Hub *stream.Hub
	// Path is the hub path ("app/name") the stream is published under.
	Path string
	// URL is rtsp://[user:pass@]host[:port]/path of the source.
	URL string
	// Transport is "udp", "tcp", or "" for UDP with a fallback to TCP.
	Transport string
	// MinBackoff / MaxBackoff bound the wait between attempts; it doubles
	// after each failure and resets after a session that played for 10 s.
	MinBackoff, MaxBackoff time.Duration
	// ReadTimeout: silence after which the source is considered lost.
	ReadTimeout time.Duration
	// Authorizer, if set, decides on the publish of every session before
	// it starts (an origin asks its control plane, as for any encoder);
	// nil publishes under Path without asking.
	Authorizer Authorizer
	Logger     *slog.Logger
}

// Authorizer decides whether a pull may publish into the hub. The relay
// implements it with the control plane's publish decision.
type Authorizer interface {
	// AuthorizePull is asked before each session's publish; an error
	// refuses it (the puller backs off and asks again).
	AuthorizePull(ctx context.Context, path, sourceAddr string) (Grant, error)
	// PullDone is told when a granted publish ended.
	PullDone(path string, g Grant)
}

// Grant is an Authorizer's yes.
type Grant struct {
	Tag      string // the hub publisher's Tag (see stream.PublisherInfo)
	Takeover bool   // replace a live publisher of the path
}

// Status is a puller's state, for APIs and tests. URL never carries
// credentials.
type Status struct {
	Path      string    `json:"path"`
	URL       string    `json:"url"`
	Playing   bool      `json:"playing"`
	Since     time.Time `json:"since"` // of the current state
	Sessions  uint64    `json:"sessions"`
	Failures  uint64    `json:"failures"`
	LastError string    `json:"last_error,omitempty"`
}

// Puller keeps one source pulled into the hub. New validates, Start runs,
// Close stops and waits.
//
// Concurrency rule: one goroutine (run) owns the client and the
// publisher; mu guards only the fields Status reads.
type Puller struct {
	p    Params
	url  *base.URL
	safe string // URL without credentials
	log  *slog.Logger

	lifeMu  sync.Mutex // guards started and cancel
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	decodeErrs atomic.Uint64
	lastLog    atomic.Int64

	mu sync.Mutex
	st Status
}

// New checks p and returns a puller that is not running yet.
func New(p Params) (*Puller, error) {
	if p.Hub == nil {
		return nil, errors.New("rtsp pull: Params.Hub is required")
	}
	if !stream.ValidPath(p.Path) {
		return nil, fmt.Errorf("rtsp pull: path %q: want app/name", p.Path)
	}
	u, err := base.ParseURL(p.URL)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return nil, fmt.Errorf("rtsp pull %s: URL must be rtsp://host[:port]/path", p.Path)
	}
	switch p.Transport {
	case "", "udp", "tcp":
	default:
		return nil, fmt.Errorf("rtsp pull %s: transport %q: want udp, tcp or empty (UDP, then TCP)", p.Path, p.Transport)
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(DefaultMaxBackoff, p.MinBackoff)
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = DefaultReadTimeout
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	safe := *u
	safe.User = nil
	pl := &Puller{p: p, url: u, safe: safe.String(), done: make(chan struct{})}
	pl.log = p.Logger.With("component", "rtsp-pull", "path", p.Path, "source", pl.safe)
	pl.st = Status{Path: p.Path, URL: pl.safe, Since: time.Now()}
	return pl, nil
}

// Start begins pulling (once).
func (pl *Puller) Start() {
	pl.lifeMu.Lock()
	defer pl.lifeMu.Unlock()
	if pl.started {
		return
	}
	pl.started = true
	ctx, cancel := context.WithCancel(context.Background())
	pl.cancel = cancel
	go pl.run(ctx)
}

// Close stops pulling, ends the publish and waits. Idempotent.
func (pl *Puller) Close() error {
	pl.lifeMu.Lock()
	if !pl.started {
		pl.started = true // a later Start does nothing
		close(pl.done)
	}
	cancel := pl.cancel
	pl.lifeMu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-pl.done
	return nil
}

// Status returns the puller's state.
func (pl *Puller) Status() Status {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.st
}

func (pl *Puller) run(ctx context.Context) {
	defer close(pl.done)
	backoff := pl.p.MinBackoff
	for {
		began := time.Now()
		played, err := pl.session(ctx)
		if ctx.Err() != nil {
			pl.setStopped(nil)
			return
		}
		if played && time.Since(began) >= stableAfter {
			backoff = pl.p.MinBackoff
		}
		pl.setStopped(err)
		pl.log.Warn("rtsp pull: source lost or refused; retrying", "err", err, "played", played,
			"lasted", time.Since(began).Round(time.Millisecond), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, pl.p.MaxBackoff)
	}
}

// session plays the source once, until it fails or ctx ends. played
// reports whether it got as far as PLAY.
func (pl *Puller) session(ctx context.Context) (played bool, err error) {
	c := &gortsplib.Client{Scheme: pl.url.Scheme, Host: pl.url.Host, ReadTimeout: pl.p.ReadTimeout, WriteTimeout: pl.p.ReadTimeout}
	switch pl.p.Transport {
	case "udp":
		tr := gortsplib.TransportUDP
		c.Transport = &tr
	case "tcp":
		tr := gortsplib.TransportTCP
		c.Transport = &tr
	}
	if err := c.Start2(); err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	defer c.Close()
	desc, _, err := c.Describe(pl.url)
	if err != nil {
		return false, fmt.Errorf("DESCRIBE: %w", err)
	}
	tracks, err := rtsp.PullTracks(desc)
	if err != nil {
		return false, err
	}
	for _, t := range tracks {
		if _, err := c.Setup(desc.BaseURL, t.Media(), 0, 0); err != nil {
			return false, fmt.Errorf("SETUP: %w", err)
		}
	}
	var g Grant
	if a := pl.p.Authorizer; a != nil {
		actx, cancel := context.WithTimeout(ctx, pl.p.ReadTimeout)
		g, err = a.AuthorizePull(actx, pl.p.Path, pl.url.Host)
		cancel()
		if err != nil {
			return false, fmt.Errorf("publish refused: %w", err)
		}
		defer a.PullDone(pl.p.Path, g)
	}
	pub, err := pl.p.Hub.Publish(pl.p.Path, stream.PublisherInfo{RemoteAddr: pl.url.Host, Protocol: Protocol, Tag: g.Tag, Takeover: g.Takeover})
	if err != nil {
		return false, err
	}
	defer pub.Close()
	gone := make(chan error, 1) // the ingest calls OnPublisherGone at most once
	in, err := rtsp.NewIngest(rtsp.IngestParams{Publisher: pub, Tracks: tracks, PTS: c.PacketPTS2,
		OnDecodeError: pl.decodeError,
		OnPublisherGone: func(err error) {
			gone <- err
			go c.Close()
		}})
	if err != nil {
		return false, err
	}
	defer in.Close()
	if err := in.WriteHeaders(); err != nil {
		return false, err
	}
	for _, t := range tracks {
		medi, h := t.Media(), in.Handler(t)
		c.OnPacketRTP(medi, medi.Formats[0], func(pkt *rtp.Packet) { h(medi, pkt) })
	}
	if _, err := c.Play(nil); err != nil {
		return false, fmt.Errorf("PLAY: %w", err)
	}
	pl.setPlaying()
	pl.log.Info("rtsp pull playing", "tracks", len(tracks))
	err = c.Wait()
	in.Close()
	select {
	case g := <-gone:
		return true, fmt.Errorf("hub ended the publish: %w", g)
	default:
	}
	return true, err
}

func (pl *Puller) setPlaying() {
	pl.mu.Lock()
	pl.st.Playing, pl.st.Since = true, time.Now()
	pl.st.Sessions++
	pl.mu.Unlock()
}

func (pl *Puller) setStopped(err error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.st.Playing, pl.st.Since = false, time.Now()
	if err != nil {
		pl.st.Failures++
		pl.st.LastError = err.Error()
	}
}

// decodeError counts malformed media and logs at most one line every 10 s.
func (pl *Puller) decodeError(err error) {
	n := pl.decodeErrs.Add(1)
	now := time.Now().UnixNano()
	last := pl.lastLog.Load()
	if now-last < int64(10*time.Second) || !pl.lastLog.CompareAndSwap(last, now) {
		return
	}
	pl.log.Warn("rtsp pull: undecodable media", "err", err, "errors", n)
}
