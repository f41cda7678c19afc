// Package httpflv serves live streams from the hub as HTTP-FLV: an FLV file
// header followed by the stream's tags, for as long as the stream lasts
// (GET /{app}/{name}.flv). Tags are encoded once per unit and shared by every
// viewer.
package httpflv

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/media/stream"
)

// Hub is what the handler needs of the stream hub (*stream.Hub).
type Hub interface {
	Read(ctx context.Context, path string, params stream.ReaderParams) (*stream.Reader, error)
}

var _ Hub = (*stream.Hub)(nil)

// PlayRequest describes a viewer asking for a stream.
type PlayRequest struct {
	App, Name string
	RawQuery  string
	Addr      string
}

// ErrForbidden may be returned (wrapped) by Params.AuthorizePlay to refuse
// a viewer with 403; any other error gives 503.
var ErrForbidden = errors.New("httpflv: play not allowed")

// Params configures a Handler. Zero values select the defaults.
type Params struct {
	Hub Hub
	// AuthorizePlay, if set, is asked before a stream is served.
	AuthorizePlay func(ctx context.Context, req PlayRequest) error
	// PlayWait is how long a viewer waits for a stream without a publisher
	// (0: 404 at once, unless the hub starts an on-demand source).
	PlayWait time.Duration
	// WriteTimeout bounds each write to a viewer (default 10s).
	WriteTimeout time.Duration
	// Reader bounds each viewer's queue (see stream.ReaderParams). Its
	// CoalesceFrames defaults to viewerCoalesceFrames; negative turns
	// coalescing off.
	Reader stream.ReaderParams
	// IsInternal, when set, tells from the play query whether a viewer is
	// the system's own (the operator's preview, a thumbnail grab): it is
	// then not counted as a viewer (stream.ReaderParams.Internal).
	IsInternal func(path string, query url.Values) bool
	Logger     *slog.Logger
}

// Handler is an http.Handler serving GET /{app}/{name}.flv. Mount it at the
// root of a mux, or under a prefix with http.StripPrefix.
//
// An HTTP/1.x viewer's connection is taken over from the server and served
// after ServeHTTP has returned, so that the server's per-request state
// (buffers, request, response) is freed for the stream's lifetime; such a
// viewer has no goroutine while it keeps up (see viewer). Close ends those
// viewers and waits for them. mu guards closed, viewers and the
// WaitGroup's Add against Close; it is never held across I/O.
type Handler struct {
	p      Params
	log    *slog.Logger
	nextID atomic.Uint64

	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	viewers map[*viewer]struct{} // taken over and not yet ended
}

// New returns a Handler.
func New(p Params) (*Handler, error) {
	if p.Hub == nil {
		return nil, errors.New("httpflv: Params.Hub is required")
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Reader.CoalesceFrames == 0 {
		p.Reader.CoalesceFrames = viewerCoalesceFrames
	}
	return &Handler{p: p, log: p.Logger.With("component", "httpflv"), viewers: make(map[*viewer]struct{})}, nil
}

// Close ends the viewers whose connections the Handler took over and waits
// for them; later viewers are served through the ResponseWriter. Viewers
// still inside ServeHTTP end with their requests or the stream.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	viewers := make([]*viewer, 0, len(h.viewers))
	for v := range h.viewers {
		viewers = append(viewers, v)
	}
	h.mu.Unlock()
	for _, v := range viewers {
		v.stop()
	}
	h.wg.Wait()
}

// viewerCoalesceFrames is how many video frames a viewer's writes carry by
// default (see stream.ReaderParams.CoalesceFrames), as for RTMP players: one
// write per frame, audio riding along, with no frame held back (two frames
// would cost a frame interval of lag: see rtmpserver.playerCoalesceFrames).
const viewerCoalesceFrames = 1

// tagKey names the shared FLV tag encoding of a unit.
var tagKey = stream.EncKey{Format: "flv-tag"}

// parsePath splits "/app/name.flv" into app and name.
func parsePath(p string) (app, name string, ok bool) {
	p = strings.TrimPrefix(p, "/")
	app, file, found := strings.Cut(p, "/")
	if !found || app == "" || strings.Contains(file, "/") {
		return "", "", false
	}
	name, found = strings.CutSuffix(file, ".flv")
	if !found || name == "" {
		return "", "", false
	}
	return app, name, stream.ValidPath(app + "/" + name)
}

// ServeHTTP serves one viewer until the stream ends or the viewer leaves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	app, name, ok := parsePath(r.URL.Path)
	if !ok {
		http.Error(w, "not found: expected /{app}/{name}.flv", http.StatusNotFound)
		return
	}
	id := h.nextID.Add(1)
	log := h.log.With("conn", id, "remote", r.RemoteAddr, "app", app, "name", name)
	if h.p.AuthorizePlay != nil {
		err := h.p.AuthorizePlay(r.Context(), PlayRequest{App: app, Name: name, RawQuery: r.URL.RawQuery, Addr: r.RemoteAddr})
		switch {
		case errors.Is(err, ErrForbidden):
			http.Error(w, "forbidden", http.StatusForbidden)
			log.Info("httpflv play denied")
			return
		case err != nil:
			http.Error(w, "authorization unavailable", http.StatusServiceUnavailable)
			log.Warn("httpflv play authorization failed", "err", err)
			return
		}
	}
	rp := h.p.Reader
	rp.WaitTimeout = h.p.PlayWait
	rp.Internal = h.p.IsInternal != nil && h.p.IsInternal(app+"/"+name, r.URL.Query())
	// Once the connection is ours, the publisher writes each batch to it
	// itself while the viewer keeps up (see viewer).
	v := &viewer{h: h, log: log, signal: make(chan struct{}, 1)}
	rp.Direct, rp.Wake = v.direct, v.wake
	rd, err := h.p.Hub.Read(r.Context(), app+"/"+name, rp)
	if err != nil {
		if errors.Is(err, stream.ErrNotFound) || errors.Is(err, stream.ErrBadPath) {
			http.Error(w, "stream not found", http.StatusNotFound)
			return
		}
		http.Error(w, "stream unavailable", http.StatusServiceUnavailable)
		log.Warn("httpflv read failed", "err", err)
		return
	}
	v.rd = rd
	hdr := w.Header()
	hdr.Set("Content-Type", "video/x-flv")
	hdr.Set("Cache-Control", "no-cache, no-store")
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		rd.Close()
		return
	}
	v.start = time.Now()
	if conn, bw, ok := h.takeOver(w, r, v); ok {
		// w and r are not used after ServeHTTP.
		v.begin(conn, bw, hdr.Clone(), r.ProtoMinor >= 1)
		return
	}
	defer rd.Close()
	written, reason, err := h.writeResponse(r.Context(), w, v)
	logClosed(log, v.start, written, reason, err)
}

func logClosed(log *slog.Logger, start time.Time, written int64, reason string, err error) {
	attrs := []any{"reason", reason, "bytes_out", written, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	log.Info("httpflv connection closed", attrs...)
}

// takeOver hijacks an HTTP/1.x viewer's connection for v, counting it in
// h.wg and h.viewers until v ends. It fails on HTTP/2, on a ResponseWriter
// that cannot hand its connection over and once the Handler is closed: the
// viewer is then served through the ResponseWriter (writeResponse).
func (h *Handler) takeOver(w http.ResponseWriter, r *http.Request, v *viewer) (net.Conn, *bufio.Writer, bool) {
	if r.ProtoMajor != 1 {
		return nil, nil, false
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, false
	}
	h.wg.Add(1)
	h.viewers[v] = struct{}{}
	h.mu.Unlock()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.release(v)
		return nil, nil, false
	}
	return conn, brw.Writer, true
}

// release undoes takeOver's count of v.
func (h *Handler) release(v *viewer) {
	h.mu.Lock()
	delete(h.viewers, v)
	h.mu.Unlock()
	h.wg.Done()
}

// appendTags appends the shared FLV tag encodings of units to dst.
func appendTags(dst [][]byte, units []*stream.Unit) [][]byte {
	for _, u := range units {
		dst = append(dst, u.Encoded(tagKey, func() []byte { return tag(u) }))
	}
	return dst
}

// framer frames a response body's pieces: one HTTP chunk each (size line,
// body, CRLF) when chunked, the body alone otherwise.
type framer struct {
	chunked bool
	size    [20]byte // the storage of the last size line
}

// frame appends one frame of body to dst and returns it with its length in
// bytes; an empty body adds nothing. The size line lives in f until the
// next frame.
func (f *framer) frame(dst, body [][]byte) ([][]byte, int) {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	if !f.chunked {
		return append(dst, body...), n
	}
	if n == 0 {
		// An empty batch (what a direct write left goes out alone): a
		// chunk of size 0 would end the response.
		return dst, 0
	}
	line := append(strconv.AppendInt(f.size[:0], int64(n), 16), '\r', '\n')
	dst = append(append(append(dst, line), body...), crlf)
	return dst, n + len(line) + len(crlf)
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// writeResponse serves the viewer through the ResponseWriter: a write per
// unit and a flush per batch.
func (h *Handler) writeResponse(ctx context.Context, w http.ResponseWriter, v *viewer) (int64, string, error) {
	// A stream outlives the server's read and write timeouts: lift them
	// and bound each write instead.
	_ = httpserve.Stream(w)
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	var written int64
	write := func(b []byte) error {
		n, err := w.Write(b)
		written += int64(n)
		return err
	}
	_ = rc.SetWriteDeadline(time.Now().Add(h.p.WriteTimeout))
	if err := write(flv.AppendHeader(nil, true, true)); err != nil {
		return written, "viewer left", err
	}
	if err := rc.Flush(); err != nil {
		return written, "viewer left", err
	}
	for {
		units, err := v.next(ctx)
		switch {
		case errors.Is(err, stream.ErrEnded):
			return written, "stream ended", nil
		case errors.Is(err, stream.ErrDropped):
			return written, "viewer too slow, dropped", err
		case err != nil:
			return written, "viewer left", nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(h.p.WriteTimeout))
		for _, u := range units {
			if err := write(u.Encoded(tagKey, func() []byte { return tag(u) })); err != nil {
				return written, "write to viewer failed", err
			}
		}
		if err := rc.Flush(); err != nil {
			return written, "write to viewer failed", err
		}
	}
}

// tag encodes u as an FLV tag (header, body and PreviousTagSize).
func tag(u *stream.Unit) []byte {
	typ := flv.TagScript
	switch u.Kind {
	case stream.KindVideo:
		typ = flv.TagVideo
	case stream.KindAudio:
		typ = flv.TagAudio
	}
	ts := flv.TagTimestamp(u.Kind == stream.KindData && u.Header, u.DTS)
	return flv.AppendTag(make([]byte, 0, len(u.Payload)+15), typ, ts, u.Payload)
}
