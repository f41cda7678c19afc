package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the hub.
var (
	// ErrAlreadyPublishing: the path has a live publisher and the new one did
	// not ask for a takeover.
	ErrAlreadyPublishing = errors.New("stream: already publishing")
	// ErrNotFound: no publisher appeared for the path in time.
	ErrNotFound = errors.New("stream: not found")
	// ErrEnded: the publisher left and none came back within the grace time.
	ErrEnded = errors.New("stream: ended")
	// ErrDropped: the reader fell behind too often and was disconnected.
	ErrDropped = errors.New("stream: reader dropped for falling behind")
	// ErrClosed: the publisher was closed (by its owner, a takeover, or the
	// hub shutting down), or the hub is closed.
	ErrClosed = errors.New("stream: closed")
	// ErrBadPath: the path is not of the form "app/name".
	ErrBadPath = errors.New("stream: bad path")
)

// Defaults for HubParams and ReaderParams zero values.
const (
	DefaultPublisherGrace = 5 * time.Second
	DefaultIdleTimeout    = 10 * time.Second
	DefaultOnDemandWait   = 10 * time.Second
	DefaultMaxGOPUnits    = 4096
	DefaultMaxGOPBytes    = 32 << 20
	DefaultAudioWindow    = 64
)

// Source is an on-demand producer of a stream (for example an edge pulling
// from an origin). It publishes into the hub through Hub.Publish on its own;
// the hub only starts it (HubParams.OnDemand) and closes it when idle.
type Source interface {
	Close() error
}

// HubParams configures a Hub. Zero values select the defaults above.
type HubParams struct {
	// PublisherGrace is how long readers wait for a new publisher after the
	// current one leaves before they get ErrEnded. Negative: no grace.
	PublisherGrace time.Duration
	// OnDemand, if set, is called when a reader asks for a path without a
	// publisher. The hub runs at most one source per path at a time.
	OnDemand func(path string) (Source, error)
	// IdleTimeout: an on-demand source with no readers for this long is closed.
	IdleTimeout time.Duration
	// OnDemandWait is how long Read waits for an on-demand source to publish
	// when ReaderParams.WaitTimeout is zero.
	OnDemandWait time.Duration
	// MaxGOPUnits and MaxGOPBytes bound the cached GOP; a GOP that grows past
	// them is dropped and new readers wait for the next keyframe.
	MaxGOPUnits int
	MaxGOPBytes int
	// AudioWindow is how many units an audio-only stream keeps for new readers.
	AudioWindow int
	Logger      *slog.Logger
}

func (p *HubParams) setDefaults() {
	if p.PublisherGrace == 0 {
		p.PublisherGrace = DefaultPublisherGrace
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = DefaultIdleTimeout
	}
	if p.OnDemandWait <= 0 {
		p.OnDemandWait = DefaultOnDemandWait
	}
	if p.MaxGOPUnits <= 0 {
		p.MaxGOPUnits = DefaultMaxGOPUnits
	}
	if p.MaxGOPBytes <= 0 {
		p.MaxGOPBytes = DefaultMaxGOPBytes
	}
	if p.AudioWindow <= 0 {
		p.AudioWindow = DefaultAudioWindow
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
}

// Hub is the registry of streams by path ("app/name").
//
// Concurrency rule: mu guards the map and the control fields of every stream
// (publisher, reader list writes, source, timers). mu is never held across a
// blocking channel operation, a callback (OnDemand, Source.Close) or I/O.
// The media path (Publisher.Write) does not take mu: it reads the reader list
// through an atomic pointer (copy-on-write under mu) and takes only each
// reader's queue lock. Lock order: mu, then a reader's queue lock.
type Hub struct {
	params HubParams
	log    *slog.Logger

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool

	totals struct {
		bytesIn, bytesOut, skips, drops, publishes atomic.Uint64
	}
}

// NewHub returns an empty hub.
func NewHub(params HubParams) *Hub {
	params.setDefaults()
	return &Hub{params: params, log: params.Logger, streams: map[string]*stream{}}
}

// ValidPath reports whether path has the form "app/name" with non-empty
// segments and no "." or ".." segment.
func ValidPath(path string) bool {
	if path == "" || len(path) > 1024 {
		return false
	}
	segs := strings.Split(path, "/")
	if len(segs) < 2 {
		return false
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// Publish attaches a new publisher to path. If the path already has one,
// Publish fails with ErrAlreadyPublishing unless info.Takeover is set; then
// the old publisher is closed and readers continue with the new one.
func (h *Hub) Publish(path string, info PublisherInfo) (*Publisher, error) {
	if !ValidPath(path) {
		return nil, fmt.Errorf("publish %q: %w", path, ErrBadPath)
	}
	if info.Start.IsZero() {
		info.Start = time.Now()
	}
	info.Encoder = CleanEncoder(info.Encoder)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("publish %q: %w", path, ErrClosed)
	}
	s := h.streams[path]
	if s == nil {
		s = h.newStreamLocked(path)
	}
	old := s.pub
	if old != nil && !info.Takeover {
		h.mu.Unlock()
		return nil, fmt.Errorf("publish %q: %w", path, ErrAlreadyPublishing)
	}
	if old != nil {
		old.closed.Store(true)
	}
	p := &Publisher{s: s, info: info, done: make(chan struct{}), follows: s.hadPublisher}
	s.pub = p
	s.info = info
	s.hadPublisher = true
	s.graceGen++ // cancels a pending grace expiry
	if s.graceTimer != nil {
		s.graceTimer.Stop()
		s.graceTimer = nil
	}
	if p.follows {
		for _, r := range *s.readers.Load() {
			r.resync()
		}
	}
	if old == nil {
		close(s.arrived) // non-blocking; open exactly while there is no publisher
	}
	h.totals.publishes.Add(1)
	h.mu.Unlock()

	if old != nil {
		old.closeDone()
		h.log.Info("publisher taken over", "path", path, "old_addr", old.info.RemoteAddr, "new_addr", info.RemoteAddr)
	}
	return p, nil
}

// Read registers a reader on path. If the path has no publisher, Read starts
// the on-demand source (if configured) and waits up to the wait timeout for a
// publisher; it returns ErrNotFound if none appears. A path in its publisher
// grace period is joined at once.
func (h *Hub) Read(ctx context.Context, path string, params ReaderParams) (*Reader, error) {
	if !ValidPath(path) {
		return nil, fmt.Errorf("read %q: %w", path, ErrBadPath)
	}
	params.setDefaults()
	wait := params.WaitTimeout
	if wait <= 0 && h.params.OnDemand != nil {
		wait = h.params.OnDemandWait
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("read %q: %w", path, ErrClosed)
	}
	s := h.streams[path]
	if s == nil {
		if wait <= 0 {
			h.mu.Unlock()
			return nil, fmt.Errorf("read %q: %w", path, ErrNotFound)
		}
		s = h.newStreamLocked(path)
	}
	r := newReader(s, params)
	s.addReaderLocked(r)
	ready := s.pub != nil || s.graceTimer != nil
	arrived := s.arrived
	startSource := s.needSourceLocked()
	h.mu.Unlock()

	// Join before waiting so that no unit written after the publisher
	// arrives is missed.
	r.join()
	if startSource {
		if err := h.startSource(s); err != nil {
			r.Close()
			return nil, fmt.Errorf("read %q: %w", path, err)
		}
	}
	if ready {
		return r, nil
	}
	if wait <= 0 {
		r.Close()
		return nil, fmt.Errorf("read %q: %w", path, ErrNotFound)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-arrived:
		return r, nil
	case <-r.ended:
		r.Close()
		return nil, fmt.Errorf("read %q: %w", path, ErrNotFound)
	case <-t.C:
		r.Close()
		return nil, fmt.Errorf("read %q: %w", path, ErrNotFound)
	case <-ctx.Done():
		r.Close()
		return nil, fmt.Errorf("read %q: %w", path, ctx.Err())
	}
}

// startSource calls OnDemand for s (outside mu) and records the source.
func (h *Hub) startSource(s *stream) error {
	src, err := h.params.OnDemand(s.path)
	h.mu.Lock()
	s.sourcePending = false
	if err != nil {
		h.maybeRemoveLocked(s)
		h.mu.Unlock()
		return fmt.Errorf("start on-demand source: %w", err)
	}
	if s.removed || h.closed {
		h.mu.Unlock()
		closeSource(h.log, s.path, src)
		return nil
	}
	s.source = src
	if s.readerCount() == 0 {
		s.startIdleLocked()
	}
	h.mu.Unlock()
	h.log.Info("on-demand source started", "path", s.path)
	return nil
}

func closeSource(log *slog.Logger, path string, src Source) {
	if err := src.Close(); err != nil {
		log.Warn("close on-demand source", "path", path, "err", err)
	}
}

// Close ends every stream: publishers are closed, readers get ErrEnded and
// on-demand sources are closed.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	var ends []func()
	for _, s := range h.streams {
		if p := s.pub; p != nil {
			p.closed.Store(true)
			s.pub = nil
			ends = append(ends, p.closeDone)
		}
		ends = append(ends, h.endLocked(s)...)
	}
	h.mu.Unlock()
	for _, f := range ends {
		f()
	}
}

func (h *Hub) newStreamLocked(path string) *stream {
	s := &stream{hub: h, path: path, arrived: make(chan struct{})}
	s.releaseTimer = time.AfterFunc(time.Hour, s.releaseHeld)
	s.releaseTimer.Stop()
	empty := []*Reader{}
	s.readers.Store(&empty)
	s.snap.Store(&snapshot{})
	h.streams[path] = s
	return s
}

// endLocked removes s from the hub and returns the work to do after mu is
// released: readers get ErrEnded and the source is closed.
func (h *Hub) endLocked(s *stream) []func() {
	if !s.removed {
		delete(h.streams, s.path)
		s.removed = true
	}
	s.graceGen++
	s.idleGen++
	if s.graceTimer != nil {
		s.graceTimer.Stop()
		s.graceTimer = nil
	}
	empty := []*Reader{}
	readers := *s.readers.Swap(&empty)
	var ends []func()
	for _, r := range readers {
		ends = append(ends, func() { r.end(ErrEnded) })
	}
	if src := s.source; src != nil {
		s.source = nil
		ends = append(ends, func() { closeSource(h.log, s.path, src) })
	}
	return ends
}

// maybeRemoveLocked forgets s once nothing refers to it any more.
func (h *Hub) maybeRemoveLocked(s *stream) {
	if s.removed || s.pub != nil || s.readerCount() > 0 || s.source != nil || s.sourcePending {
		return
	}
	s.graceGen++
	if s.graceTimer != nil {
		s.graceTimer.Stop()
		s.graceTimer = nil
	}
	delete(h.streams, s.path)
	s.removed = true
}

// publisherClosed handles the departure of the current publisher of s.
func (h *Hub) publisherClosed(p *Publisher) {
	s := p.s
	h.mu.Lock()
	if s.pub != p {
		h.mu.Unlock()
		return
	}
	s.pub = nil
	s.arrived = make(chan struct{})
	var ends []func()
	restart := false
	switch {
	case s.readerCount() == 0:
		h.maybeRemoveLocked(s)
	case h.params.PublisherGrace < 0:
		ends = h.endLocked(s)
	default:
		s.graceGen++
		gen := s.graceGen
		s.graceTimer = time.AfterFunc(h.params.PublisherGrace, func() { h.graceExpired(s, gen) })
		restart = s.needSourceLocked()
	}
	h.mu.Unlock()
	for _, f := range ends {
		f()
	}
	if restart {
		if err := h.startSource(s); err != nil {
			h.log.Warn("restart on-demand source", "path", s.path, "err", err)
		}
	}
}

func (h *Hub) graceExpired(s *stream, gen uint64) {
	h.mu.Lock()
	if s.graceGen != gen || s.pub != nil || s.removed {
		h.mu.Unlock()
		return
	}
	s.graceTimer = nil
	ends := h.endLocked(s)
	h.mu.Unlock()
	h.log.Info("stream ended: no publisher within grace", "path", s.path)
	for _, f := range ends {
		f()
	}
}

func (h *Hub) idleExpired(s *stream, gen uint64) {
	h.mu.Lock()
	if s.idleGen != gen || s.readerCount() > 0 || s.source == nil {
		h.mu.Unlock()
		return
	}
	src := s.source
	s.source = nil
	h.maybeRemoveLocked(s)
	h.mu.Unlock()
	h.log.Info("on-demand source idle, closing", "path", s.path)
	closeSource(h.log, s.path, src)
}

// detach removes r from its stream (idempotent).
func (h *Hub) detach(r *Reader) {
	s := r.s
	h.mu.Lock()
	if !s.removeReaderLocked(r) {
		h.mu.Unlock()
		return
	}
	if s.readerCount() == 0 {
		if s.source != nil {
			s.startIdleLocked()
		}
		h.maybeRemoveLocked(s)
	}
	h.mu.Unlock()
}
