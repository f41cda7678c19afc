package hlsrewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is what an Origin returns for a playlist it does not have.
var ErrNotFound = errors.New("not found")

// Origin fetches a playlist from the HLS origin by its path (/hls/s/ID/…).
type Origin interface {
	Fetch(ctx context.Context, path string) ([]byte, error)
}

// HTTPOrigin reads playlists from HLS origins over HTTP with the cluster
// token, trying each base URL in turn.
type HTTPOrigin struct {
	BaseURLs     []string
	ClusterToken string
	Client       *http.Client
}

// Fetch implements Origin.
func (o *HTTPOrigin) Fetch(ctx context.Context, path string) ([]byte, error) {
	var last error = ErrNotFound
	for _, base := range o.BaseURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+o.ClusterToken)
		resp, err := o.Client.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			last = err
		case resp.StatusCode == http.StatusOK:
			return b, nil
		case resp.StatusCode == http.StatusNotFound:
			last = ErrNotFound
		default:
			last = fmt.Errorf("origin %s: %s", base, resp.Status)
		}
	}
	return nil, last
}

// fetched is one origin playlist as the rewriter last read it.
type fetched struct {
	body   []byte
	err    error
	at     time.Time
	maxAge time.Duration // half the playlist's target duration (1 s for a master)
	ready  chan struct{} // closed when body, err, at and maxAge are set
}

// fetcher coalesces origin reads: concurrent viewers of a playlist share
// one fetch, and a fetched playlist serves every viewer for maxAge (half
// its target duration), so each replica reads a playlist version from the
// origin at most about twice however many viewers reload it. Its mutex
// guards m and is never held across the fetch.
type fetcher struct {
	origin Origin
	now    func() time.Time
	count  func() // one per origin fetch (metrics)
	mu     sync.Mutex
	m      map[string]*fetched
}

// get returns the playlist at path, fetching it when what is cached is
// older than half its target duration.
func (f *fetcher) get(ctx context.Context, path string) ([]byte, error) {
	f.mu.Lock()
	e := f.m[path]
	if e != nil {
		select {
		case <-e.ready:
			if f.now().Sub(e.at) > e.maxAge || (e.err != nil && f.now().Sub(e.at) > 200*time.Millisecond) {
				e = nil
			}
		default: // in flight: join it
		}
	}
	if e == nil {
		e = &fetched{ready: make(chan struct{})}
		f.m[path] = e
		f.mu.Unlock()
		f.count()
		// Detached from the viewer: one leaving must not fail the others.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		e.body, e.err = f.origin.Fetch(fctx, path)
		cancel()
		e.at = f.now()
		e.maxAge = time.Second
		if td := targetDuration(e.body); td > 0 {
			e.maxAge = td / 2
		}
		close(e.ready)
	} else {
		f.mu.Unlock()
	}
	select {
	case <-e.ready:
		return e.body, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sweep forgets playlists not fetched for a while.
func (f *fetcher) sweep(olderThan time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, e := range f.m {
		select {
		case <-e.ready:
			if e.at.Before(olderThan) {
				delete(f.m, k)
			}
		default:
		}
	}
}
