package cdnedge

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/portier/portier/internal/hlssign"
)

// Request results, the label of portier_cdn_edge_requests_total and the
// X-Cache response header.
const (
	resultHit       = "hit"       // served from the memory cache
	resultDiskHit   = "disk_hit"  // served from the disk tier
	resultStale     = "stale"     // an expired playlist served while it refreshes
	resultCoalesced = "coalesced" // joined another viewer's fill in flight
	resultMiss      = "miss"      // started an origin fetch
	resultError     = "error"     // the origin failed or does not have it
	resultDenied    = "denied"    // missing, expired or invalid signature
	resultBad       = "bad_request"
)

// xCache are the X-Cache header values by result, allocated once.
var xCache = map[string][]string{resultHit: {resultHit}, resultDiskHit: {resultDiskHit}, resultStale: {resultStale}, resultCoalesced: {resultCoalesced}, resultMiss: {resultMiss}}

// serveHLS answers one viewer request under /hls/s/.
func (e *Edge) serveHLS(w http.ResponseWriter, r *http.Request) {
	e.m.active.Add(1)
	defer e.m.active.Add(-1)
	e.cors.Apply(w, r)
	if r.Method == http.MethodOptions {
		e.cors.Preflight(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		e.m.request(resultBad)
		e.fail(w, r, http.StatusMethodNotAllowed, "method", "an edge serves GET, HEAD and OPTIONS", nil)
		return
	}
	key := r.URL.Path
	playlist, ok := objectKind(key)
	if !ok || r.URL.RawPath != "" {
		e.m.request(resultBad)
		e.fail(w, r, http.StatusBadRequest, "bad_path",
			"want /hls/s/{streamID}/master.m3u8, /hls/s/{streamID}/{rendition}/index.m3u8 or /hls/s/{streamID}/{rendition}/{segment}.ts|.m4s|.mp4, signed", nil)
		return
	}
	if err := hlssign.Verify(e.secret, key, r.URL.Query(), e.p.Now()); err != nil {
		e.m.request(resultDenied)
		msg := err.Error()
		switch {
		case errors.Is(err, hlssign.ErrMissing):
			msg += ": fetch the playlist from the control plane, whose URIs carry exp and sig"
		case errors.Is(err, hlssign.ErrExpired):
			msg += ": reload the master playlist from the control plane for a fresh signature"
		}
		e.fail(w, r, http.StatusForbidden, "signature", msg, err)
		return
	}
	if !playlist && e.disk != nil && e.cache.get(key) == nil {
		if it := e.disk.get(key); it != nil && e.serveDisk(w, r, it) {
			return
		}
	}
	en, result := e.lookup(key, playlist)
	select {
	case <-en.ready:
	case <-r.Context().Done():
		return
	}
	if en.status != http.StatusOK {
		e.m.request(resultError)
		if en.status == http.StatusNotFound {
			e.fail(w, r, http.StatusNotFound, "not_found", "no such object at the origin", nil)
		} else {
			e.fail(w, r, http.StatusBadGateway, "origin", "the origin could not be reached or failed; retry", nil)
		}
		return
	}
	e.m.request(result)
	h := w.Header()
	en.setHeaders(h)
	h["X-Cache"] = xCache[result]
	cw := &countingWriter{ResponseWriter: w}
	if en.size >= 0 && (r.Header.Get("Range") != "" || hasConditional(r)) {
		delete(h, "Content-Length") // ServeContent sets the range's
		// Range, If-None-Match, If-Modified-Since; reads wait for bytes
		// still on their way from the origin.
		http.ServeContent(cw, r, "", en.lastModified, &entryReader{ctx: r.Context(), e: en, flush: cw.Flush})
	} else {
		e.serveWhole(cw, r, en)
	}
	e.m.out(cw.n)
}

// serveDisk serves a segment from the disk tier (sendfile, Range and
// conditional requests through http.ServeContent); false when its file is
// gone, and the caller fetches it again.
func (e *Edge) serveDisk(w http.ResponseWriter, r *http.Request, it *diskItem) bool {
	f, err := os.Open(it.path)
	if err != nil {
		return false
	}
	defer f.Close()
	e.m.request(resultDiskHit)
	h := w.Header()
	for k, v := range it.header {
		h[k] = v
	}
	h["X-Cache"] = xCache[resultDiskHit]
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", it.modTime, f)
	e.m.out(cw.n)
	return true
}

// hasConditional reports whether r carries a conditional header that
// http.ServeContent evaluates.
func hasConditional(r *http.Request) bool {
	h := r.Header
	return h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" || h.Get("If-Match") != "" ||
		h.Get("If-Unmodified-Since") != "" || h.Get("If-Range") != ""
}

// serveWhole sends the whole object: the bytes already there in one
// write, then each piece as it arrives from the origin, flushed, until
// the body is complete. Nothing is copied: the writes take the entry's
// own (append-only) bytes.
func (e *Edge) serveWhole(w *countingWriter, r *http.Request, en *entry) {
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	off := 0
	for {
		buf, done, err, changed := en.snapshot()
		if off < len(buf) {
			if _, werr := w.Write(buf[off:]); werr != nil {
				return
			}
			off = len(buf)
			if !done {
				w.Flush()
			}
			continue
		}
		if err != nil {
			panic(http.ErrAbortHandler) // the viewer must see a broken body, not a short one
		}
		if done {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// lookup finds or starts the fill of key.
func (e *Edge) lookup(key string, playlist bool) (*entry, string) {
	var replace *entry
	if en := e.cache.get(key); en != nil {
		if !en.complete() {
			return en, resultCoalesced
		}
		if !en.playlist {
			return en, resultHit
		}
		switch f, refresh := e.cache.playlistState(en, e.p.Now().UnixNano()); f {
		case fresh:
			return en, resultHit
		case stale:
			if refresh {
				e.startRefresh(en)
			}
			return en, resultStale
		}
		replace = en
	}
	en, added := e.cache.getOrAdd(key, newEntry(key, playlist), replace)
	if !added {
		if en.complete() {
			return en, resultHit
		}
		return en, resultCoalesced
	}
	e.startFill(en)
	return en, resultMiss
}

// startRefresh refetches a stale playlist (conditionally, with its ETag)
// while viewers go on getting the stale copy; on success the new copy
// replaces it, on 304 the old one is fresh again.
func (e *Edge) startRefresh(old *entry) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		nx := newEntry(old.key, true)
		e.fill(nx, old.etag)
		switch {
		case nx.status == http.StatusNotModified:
			body, _, _, _ := old.snapshot()
			ttl := playlistTTL(body, old.cacheControl)
			now := e.p.Now()
			e.cache.setExpiry(old, now.Add(ttl).UnixNano(), now.Add(ttl+e.p.StaleFor).UnixNano())
			e.cache.endRefresh(old)
		case nx.complete():
			if cur, added := e.cache.getOrAdd(nx.key, nx, old); added {
				body, _, _, _ := cur.snapshot()
				e.cache.charge(cur, int64(len(body)))
			}
		default:
			e.cache.endRefresh(old)
		}
	}()
}

// objectKind checks an HLS object path and says whether it is a playlist.
func objectKind(p string) (playlist, ok bool) {
	if _, ok := hlssign.PrefixOf(p); !ok {
		return false, false
	}
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return false, false
	}
	switch {
	case strings.HasSuffix(p, ".m3u8"):
		return true, true
	case strings.HasSuffix(p, ".ts"), strings.HasSuffix(p, ".m4s"), strings.HasSuffix(p, ".mp4"):
		return false, true
	}
	return false, false
}

// countingWriter counts the bytes of a response body.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom lets a file body reach the connection's ReadFrom (sendfile).
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Flush passes flushes on (streamed bodies).
func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
