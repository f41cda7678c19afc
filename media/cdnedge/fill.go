package cdnedge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/hlssign"
)

// fillChunk is how much of an origin body is read (and passed on to
// waiters) at a time.
const fillChunk = 32 << 10

// startFill fetches en from an origin in its own goroutine.
func (e *Edge) startFill(en *entry) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.fill(en, "")
	}()
}

// fill fetches en's object and streams its body into en. It never leaves
// an origin error in the cache: a failed fill is removed, so the next
// request retries. ifNoneMatch, when set, makes the fetch conditional (a
// playlist refresh): a 304 leaves en with status 304 and no body.
func (e *Edge) fill(en *entry, ifNoneMatch string) {
	ctx, cancel := context.WithTimeout(e.ctx, e.p.OriginTimeout)
	defer cancel()
	start := time.Now()
	resp, err := e.fetch(ctx, en.key, ifNoneMatch)
	if err != nil {
		e.m.originFetch("error", time.Since(start))
		e.failFill(en, http.StatusBadGateway, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.m.originFetch(strconv.Itoa(resp.StatusCode), time.Since(start))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection
		e.failFill(en, resp.StatusCode, fmt.Errorf("origin answered %s", resp.Status))
		return
	}
	e.m.originFetch("200", time.Since(start))
	h := resp.Header
	en.status = http.StatusOK
	en.contentType = h.Get("Content-Type")
	en.etag = h.Get("ETag")
	en.cacheControl = h.Get("Cache-Control")
	en.lastModified, _ = http.ParseTime(h.Get("Last-Modified"))
	en.fetchedAt = e.p.Now()
	en.size = resp.ContentLength
	en.buildHeader()
	keep := en.size <= e.p.MaxObjectBytes
	if en.size > 0 && keep {
		en.buf = make([]byte, 0, en.size)
	}
	if keep {
		e.cache.charge(en, max(en.size, 0))
	} else {
		e.cache.remove(en) // streamed to the viewers who asked, not kept
	}
	close(en.ready)

	buf := make([]byte, fillChunk)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			en.append(buf[:k])
			n += int64(k)
			e.m.originBytes.Add(float64(k))
			if n > e.p.MaxObjectBytes && keep {
				keep = false
				e.cache.remove(en)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			e.cache.remove(en)
			en.finish(fmt.Errorf("%w: %s from origin: %v", errFillFailed, en.key, rerr))
			e.log.Warn("origin fetch broke", "key", en.key, "bytes", n, "err", rerr)
			return
		}
	}
	if en.size >= 0 && n != en.size {
		e.cache.remove(en)
		en.finish(fmt.Errorf("%w: %s: origin sent %d of %d bytes", errFillFailed, en.key, n, en.size))
		return
	}
	if en.playlist {
		body, _, _, _ := en.snapshot()
		ttl := playlistTTL(body, h.Get("Cache-Control"))
		now := e.p.Now()
		e.cache.setExpiry(en, now.Add(ttl).UnixNano(), now.Add(ttl+e.p.StaleFor).UnixNano())
	}
	if keep {
		e.cache.charge(en, n)
	}
	en.finish(nil)
	if e.disk != nil && !en.playlist {
		body, _, _, _ := en.snapshot()
		if err := e.disk.store(en, body); err != nil {
			e.log.Warn("disk cache write failed", "key", en.key, "err", err)
		}
	}
}

// failFill ends a fill that got no body: waiters see status (a 404 stays
// a 404; anything else is the edge's 502) and the cache forgets en.
func (e *Edge) failFill(en *entry, status int, err error) {
	e.cache.remove(en)
	switch status {
	case http.StatusNotFound, http.StatusNotModified, http.StatusBadRequest:
	default:
		e.log.Warn("origin fetch failed", "key", en.key, "status", status, "err", err)
		status = http.StatusBadGateway
	}
	en.status = status
	close(en.ready)
	en.finish(err)
}

// fetch GETs key from the origins, starting at the one the stream hashes
// to and moving on past transport errors, 5xx and 404 (another origin may
// hold the stream). Viewer query parameters are never forwarded: the
// origin's objects do not depend on them.
func (e *Edge) fetch(ctx context.Context, key, ifNoneMatch string) (*http.Response, error) {
	prefix, _ := hlssign.PrefixOf(key)
	h := fnv.New32a()
	h.Write([]byte(prefix))
	first := int(h.Sum32() % uint32(len(e.origins)))
	var last *http.Response
	var errs []error
	for i := range e.origins {
		o := e.origins[(first+i)%len(e.origins)]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.String()+key, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+e.p.ClusterToken)
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("origin %s: %w", o.Host, err))
			continue
		}
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusNotFound || i == len(e.origins)-1 {
			if last != nil {
				last.Body.Close()
			}
			return resp, nil
		}
		if last != nil {
			last.Body.Close()
		}
		last = resp
	}
	if last != nil {
		return last, nil
	}
	return nil, errors.Join(errs...)
}

// playlistTTL is how long a playlist stays fresh at the edge: half its
// target duration (at least 500 ms), and never longer than the origin's
// max-age or maxPlaylistTTL. A master playlist (no target duration) uses
// the origin's max-age, or 1 s.
func playlistTTL(body []byte, cacheControl string) time.Duration {
	ttl := time.Second
	if i := bytes.Index(body, []byte("#EXT-X-TARGETDURATION:")); i >= 0 {
		rest := body[i+len("#EXT-X-TARGETDURATION:"):]
		if j := bytes.IndexAny(rest, "\r\n"); j >= 0 {
			rest = rest[:j]
		}
		if td, err := strconv.ParseFloat(strings.TrimSpace(string(rest)), 64); err == nil && td > 0 {
			ttl = time.Duration(td * float64(time.Second) / 2)
		}
	}
	if age, ok := maxAge(cacheControl); ok && age < ttl {
		ttl = age
	}
	return min(max(ttl, 500*time.Millisecond), maxPlaylistTTL)
}

// maxAge parses max-age=N from a Cache-Control header.
func maxAge(cc string) (time.Duration, bool) {
	for _, d := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(d), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		}
	}
	return 0, false
}

func timeFromNanos(n int64) time.Time { return time.Unix(0, n) }
