package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/web/views"
)

// Thumbnails of live streams: one JPEG frame grabbed by ffmpeg from an
// origin holding the stream's publish, cached per stream for thumbTTL and
// coalesced: however many requests arrive, one ffmpeg runs per stream at a
// time. The grab plays the stream for a moment, so it counts as a player
// in the origin's next heartbeat.

const (
	thumbTTL      = 10 * time.Second
	thumbErrTTL   = 2 * time.Second // a failed grab is not retried sooner
	thumbTimeout  = 10 * time.Second
	thumbMaxBytes = 4 << 20
)

var errNoThumbnail = errors.New("the stream has no origin to grab a frame from")

// thumbnailer owns the cache. Its mutex guards entries only and is never
// held while ffmpeg runs or while waiting for a grab.
type thumbnailer struct {
	ffmpeg string
	grabs  atomic.Int64 // ffmpeg runs started, for tests and logs
	mu     sync.Mutex
	cache  map[int64]*thumbEntry
	// ctx is the thumbnailer's lifetime: close cancels it (ending running
	// grabs) and waits for them (wg).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// thumbEntry is one grab: done is closed when img/err are set.
type thumbEntry struct {
	done chan struct{}
	img  []byte
	err  error
	at   time.Time // when the grab finished
}

func newThumbnailer(ffmpeg string) *thumbnailer {
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &thumbnailer{ffmpeg: ffmpeg, cache: map[int64]*thumbEntry{}, ctx: ctx, cancel: cancel}
}

// close ends the running grabs and waits for them; later grabs fail at once.
func (t *thumbnailer) close() {
	t.cancel()
	t.wg.Wait()
}

// get returns a JPEG of stream id no older than thumbTTL, grabbing one from
// src (rtmp://…) when needed. ctx bounds only this caller's wait: the grab
// itself runs to its own timeout for every waiter.
func (t *thumbnailer) get(ctx context.Context, id int64, src string) ([]byte, error) {
	now := time.Now()
	t.mu.Lock()
	e := t.cache[id]
	if e == nil || e.expired(now) {
		e = &thumbEntry{done: make(chan struct{})}
		t.cache[id] = e
		t.pruneLocked(now)
		t.grabs.Add(1)
		t.wg.Go(func() { t.grab(e, src) })
	}
	t.mu.Unlock()
	select {
	case <-e.done:
		return e.img, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cached returns the fresh JPEG of stream id, if there is one.
func (t *thumbnailer) cached(id int64) ([]byte, bool) {
	t.mu.Lock()
	e := t.cache[id]
	t.mu.Unlock()
	if e == nil || e.expired(time.Now()) {
		return nil, false
	}
	select {
	case <-e.done:
		return e.img, e.err == nil
	default:
		return nil, false
	}
}

// expired reports whether a finished entry is too old (never for a grab in
// progress).
func (e *thumbEntry) expired(now time.Time) bool {
	select {
	case <-e.done:
	default:
		return false
	}
	ttl := thumbTTL
	if e.err != nil {
		ttl = thumbErrTTL
	}
	return now.Sub(e.at) >= ttl
}

// pruneLocked forgets expired entries (streams nobody looks at any more).
func (t *thumbnailer) pruneLocked(now time.Time) {
	for id, e := range t.cache {
		if e.expired(now) {
			delete(t.cache, id)
		}
	}
}

func (t *thumbnailer) grab(e *thumbEntry, src string) {
	ctx, cancel := context.WithTimeout(t.ctx, thumbTimeout)
	defer cancel()
	e.img, e.err = grabJPEG(ctx, t.ffmpeg, src)
	e.at = time.Now()
	close(e.done)
}

// grabJPEG runs ffmpeg to decode one video frame of src, scaled to 320
// pixels wide, as a JPEG on stdout.
func grabJPEG(ctx context.Context, ffmpeg, src string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-loglevel", "error", "-rw_timeout", "5000000",
		"-i", src, "-frames:v", "1", "-vf", "scale=320:-2", "-f", "mjpeg", "-")
	var out limitedBuffer
	out.max = thumbMaxBytes
	var stderr limitedBuffer
	stderr.max = 4096
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("grab a frame: ffmpeg did not finish within %s", thumbTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("grab a frame: ffmpeg: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	img := out.Bytes()
	if len(img) < 4 || img[0] != 0xFF || img[1] != 0xD8 {
		return nil, errors.New("grab a frame: ffmpeg wrote no JPEG")
	}
	return img, nil
}

// limitedBuffer keeps at most max bytes and fails writes beyond them (so a
// runaway ffmpeg is stopped by its broken pipe rather than filling memory).
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}

// thumbnailSource is the RTMP URL of stream st at the origin that took its
// publish most recently among the live ones (errNoThumbnail if none).
func (s *Server) thumbnailSource(ctx context.Context, st *models.Stream) (string, error) {
	nodes, err := s.p.Store.DirectoryOrigins(ctx, st.Application.Name, st.Name, s.lv.AliveSince())
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.RTMPAddress != "" {
			return "rtmp://" + n.RTMPAddress + "/" + st.Application.Name + "/" + st.Name + "?" + nodewire.InternalPlayURLQuery(s.p.ClusterToken, st.Application.Name+"/"+st.Name, "thumbnail"), nil
		}
	}
	return "", errNoThumbnail
}

// uiStreamThumbnail serves a recent JPEG frame of a live stream (404 while
// the stream is offline).
func (s *Server) uiStreamThumbnail(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	if !st.Live {
		c.String(http.StatusNotFound, "the stream is offline")
		return
	}
	if img, ok := s.thumbs.cached(st.ID); ok {
		serveThumbnail(c, img)
		return
	}
	src, err := s.thumbnailSource(rctx(c), st)
	if errors.Is(err, errNoThumbnail) {
		c.String(http.StatusNotFound, "the stream is offline")
		return
	}
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	img, err := s.thumbs.get(rctx(c), st.ID, src)
	if err != nil {
		if rctx(c).Err() == nil {
			s.log.Warn("ui: thumbnail", "stream", st.ID, "err", err)
		}
		c.Header("Retry-After", strconv.Itoa(int(thumbErrTTL/time.Second)))
		c.String(http.StatusServiceUnavailable, "no frame could be grabbed from the stream right now")
		return
	}
	serveThumbnail(c, img)
}

func serveThumbnail(c *gin.Context, img []byte) {
	c.Header("Cache-Control", "private, max-age="+strconv.Itoa(int(thumbTTL/time.Second)))
	c.Data(http.StatusOK, "image/jpeg", img)
}

// uiStreamThumbnailBlock is the htmx partial that shows the thumbnail and
// replaces itself every 10 s with a new image URL.
func (s *Server) uiStreamThumbnailBlock(c *gin.Context) {
	st, err := s.uiLoadStream(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d := views.StreamDetail{Row: views.StreamRow{ID: st.ID, Name: st.Name, Live: st.Live}, Thumbnail: thumbnailURL(st)}
	s.render(c, http.StatusOK, views.StreamThumbnail(s.page(c, "", "streams"), d))
}

// thumbnailURL is the thumbnail's URL, changing every thumbTTL so that a
// refreshed page asks for a new frame (empty while offline).
func thumbnailURL(st *models.Stream) string {
	if !st.Live {
		return ""
	}
	return fmt.Sprintf("/streams/%d/thumbnail.jpg?t=%d", st.ID, time.Now().Unix()/int64(thumbTTL/time.Second))
}
