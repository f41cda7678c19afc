package cdnedge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// errFillFailed is what a waiter reads when the origin fetch it joined
// broke after its headers were sent.
var errFillFailed = errors.New("cdnedge: origin fetch failed")

// entry is one object: being filled from an origin, or complete. Its
// bytes only grow (a slice taken under mu stays valid after mu is
// released, because bytes already written are never changed), and every
// append closes changed, so waiters stream bytes as they arrive instead
// of waiting for the whole object. mu is never held across I/O.
type entry struct {
	key      string
	playlist bool

	ready chan struct{} // closed once status and headers are known

	// Set before ready is closed, then read-only.
	status       int // origin status; 200 when the body follows
	contentType  string
	etag         string
	lastModified time.Time
	// header is what every viewer response of the object carries, built
	// once (a cache hit then sets no header by name).
	header       http.Header
	cacheControl string
	size         int64 // -1: unknown (no Content-Length)
	fetchedAt    time.Time

	mu      sync.Mutex
	buf     []byte
	done    bool  // the body is complete (or the fill failed: err)
	err     error // non-nil: the fill failed
	changed chan struct{}

	// Guarded by the cache's lock.
	expires    time.Time // playlists: fresh until
	staleUntil time.Time // playlists: served stale while refreshing until
	refreshing bool
	accounted  int64 // bytes charged to the cache
}

func newEntry(key string, playlist bool) *entry {
	return &entry{key: key, playlist: playlist, ready: make(chan struct{}), changed: make(chan struct{}), size: -1}
}

// append adds origin bytes and wakes waiters.
func (e *entry) append(p []byte) {
	e.mu.Lock()
	e.buf = append(e.buf, p...)
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// finish marks the body complete (err nil) or failed.
func (e *entry) finish(err error) {
	e.mu.Lock()
	e.done, e.err = true, err
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// complete reports whether the whole body is present.
func (e *entry) complete() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done && e.err == nil
}

// bytes is the body so far, whether it is complete, and the fill's error.
func (e *entry) snapshot() ([]byte, bool, error, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.buf, e.done, e.err, e.changed
}

// readAt copies bytes at off into p, waiting for them to arrive. It
// returns io.EOF at the end of a complete body.
func (e *entry) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	for {
		buf, done, err, changed := e.snapshot()
		if off < int64(len(buf)) {
			return copy(p, buf[off:]), nil
		}
		if err != nil {
			return 0, err
		}
		if done {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// entryReader reads an entry from a position, waiting for bytes that have
// not arrived yet; with a known size it seeks, so http.ServeContent can
// answer Range and conditional requests while the object is still filling.
type entryReader struct {
	ctx context.Context
	e   *entry
	off int64
	// flush, when set, pushes what the viewer was given so far onto the
	// wire before a read waits for the origin (time to first byte).
	flush func()
}

func (r *entryReader) Read(p []byte) (int, error) {
	if r.flush != nil {
		if buf, done, _, _ := r.e.snapshot(); !done && r.off >= int64(len(buf)) {
			r.flush()
		}
	}
	n, err := r.e.readAt(r.ctx, p, r.off)
	r.off += int64(n)
	return n, err
}

func (r *entryReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		if r.e.size < 0 {
			return 0, errors.New("cdnedge: size unknown")
		}
		offset += r.e.size
	}
	if offset < 0 {
		return 0, errors.New("cdnedge: negative position")
	}
	r.off = offset
	return offset, nil
}

// buildHeader fixes the response headers of a 200 for the object.
func (e *entry) buildHeader() {
	h := http.Header{}
	if e.contentType != "" {
		h["Content-Type"] = []string{e.contentType}
	}
	if e.etag != "" {
		h["Etag"] = []string{e.etag}
	}
	if e.cacheControl != "" {
		h["Cache-Control"] = []string{e.cacheControl}
	}
	if !e.lastModified.IsZero() {
		h["Last-Modified"] = []string{e.lastModified.UTC().Format(http.TimeFormat)}
	}
	if e.size >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(e.size, 10)}
		h["Accept-Ranges"] = []string{"bytes"}
	}
	e.header = h
}

// setHeaders copies the entry's headers to a viewer response (values are
// shared, never modified).
func (e *entry) setHeaders(h http.Header) {
	for k, v := range e.header {
		h[k] = v
	}
}
