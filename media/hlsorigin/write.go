package hlsorigin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/portier/portier/internal/hlscred"
)

// errTooLarge is returned by limitReader past its limit.
var errTooLarge = errors.New("object too large")

// limitReader reads at most n bytes and then fails with errTooLarge; it
// remembers whether an error came from the client's body.
type limitReader struct {
	r       io.Reader
	n       int64
	read    int64
	bodyErr error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.read > l.n {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1-l.read {
		p = p[:l.n+1-l.read]
	}
	k, err := l.r.Read(p)
	l.read += int64(k)
	if l.read > l.n {
		return k, errTooLarge
	}
	if err != nil && err != io.EOF {
		l.bodyErr = err
	}
	return k, err
}

func kindLabel(ob object) string {
	if ob.playlist() {
		return "playlist"
	}
	return "segment"
}

// authWrite checks a write's credential: 401 for an invalid one, 403 for
// another stream's. It answers the request itself when it returns false.
func (o *Origin) authWrite(w http.ResponseWriter, r *http.Request, ob object, kind string) (hlscred.Cred, bool) {
	c, err := hlscred.Verify(o.p.ClusterToken, bearer(r))
	if err != nil {
		o.m.upload(kind, "unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="portier-hls"`)
		o.fail(w, r, http.StatusUnauthorized, "unauthorized", "writes need Authorization: Bearer with a valid HLS task credential", nil)
		return c, false
	}
	if c.StreamID != ob.Stream {
		o.m.upload(kind, "forbidden")
		o.fail(w, r, http.StatusForbidden, "forbidden",
			fmt.Sprintf("this credential writes only under /hls/s/%d/", c.StreamID), nil)
		return c, false
	}
	return c, true
}

// lockFenced returns the stream's state locked after raising its fence to
// c, or answers the request (409 fenced, 500) and returns nil.
func (o *Origin) lockFenced(ctx context.Context, w http.ResponseWriter, r *http.Request, ob object, c hlscred.Cred, kind string) *streamState {
	st, err := o.stream(ctx, ob.Stream)
	if err != nil {
		o.m.upload(kind, "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return nil
	}
	if err := o.raiseFence(ctx, st, c); err != nil {
		st.mu.Unlock()
		var f *fencedError
		if errors.As(err, &f) {
			o.m.upload(kind, "fenced")
			o.fail(w, r, http.StatusConflict, "fenced", f.Error(), nil)
			return nil
		}
		o.m.upload(kind, "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return nil
	}
	return st
}

// storeTimeout bounds the backend calls of one write.
const storeTimeout = time.Minute

// storeContext is the context of a write's backend calls: not the
// request's, because ffmpeg may close a persistent connection right after
// its last body without waiting for the answer, and a write whose body
// arrived whole is stored all the same.
func storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
}

// servePut stores a segment or a playlist.
func (o *Origin) servePut(w http.ResponseWriter, r *http.Request, ob object) {
	start := time.Now()
	kind := kindLabel(ob)
	c, ok := o.authWrite(w, r, ob, kind)
	if !ok {
		return
	}
	limit := o.p.MaxSegmentBytes
	if ob.playlist() {
		limit = maxPlaylistBytes
	}
	if r.ContentLength > limit {
		o.tooLarge(w, r, kind, limit)
		return
	}
	fctx, cancel := storeContext(r)
	st := o.lockFenced(fctx, w, r, ob, c, kind)
	cancel()
	if st == nil {
		return
	}
	_, exists := st.files[ob.Key()]
	quotaLeft := o.p.StreamQuotaBytes - st.bytes + st.files[ob.Key()].size
	st.mu.Unlock()
	if exists && !ob.playlist() {
		// Segments are immutable once stored: a CDN may hold the first
		// bytes for as long as its max-age, so other bytes under the same
		// URL would reach some viewers and not others.
		o.m.upload(kind, "exists")
		o.fail(w, r, http.StatusConflict, "segment_exists",
			fmt.Sprintf("segment %s is already stored and segments are never rewritten: write new segments under new names", ob.Key()), nil)
		return
	}
	if r.ContentLength > quotaLeft {
		o.overQuota(w, r, kind, ob)
		return
	}
	if ob.playlist() {
		o.putPlaylist(w, r, ob, c, start)
		return
	}
	o.putSegment(w, r, ob, c, start)
}

func (o *Origin) tooLarge(w http.ResponseWriter, r *http.Request, kind string, limit int64) {
	o.m.upload(kind, "too_large")
	o.fail(w, r, http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("a %s may be at most %d bytes (--max-segment-bytes; playlists 1 MiB)", kind, limit), nil)
}

func (o *Origin) overQuota(w http.ResponseWriter, r *http.Request, kind string, ob object) {
	o.m.upload(kind, "too_large")
	o.fail(w, r, http.StatusRequestEntityTooLarge, "quota",
		fmt.Sprintf("stream %d would exceed its quota of %d bytes (--stream-quota-bytes); older segments are freed by retention", ob.Stream, o.p.StreamQuotaBytes), nil)
}

// putSegment stores a segment's body as it arrives (chunked or not),
// without the stream's lock.
func (o *Origin) putSegment(w http.ResponseWriter, r *http.Request, ob object, c hlscred.Cred, start time.Time) {
	lr := &limitReader{r: r.Body, n: o.p.MaxSegmentBytes}
	ctx, cancel := storeContext(r)
	defer cancel()
	in, err := o.p.Backend.Put(ctx, ob.Key(), lr)
	switch {
	case errors.Is(err, errTooLarge):
		o.tooLarge(w, r, "segment", o.p.MaxSegmentBytes)
		return
	case err != nil && lr.bodyErr != nil:
		o.m.upload("segment", "bad_request")
		o.fail(w, r, http.StatusBadRequest, "body", "reading the request body failed", lr.bodyErr)
		return
	case err != nil:
		o.m.storageError()
		o.m.upload("segment", "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	took := time.Since(start)
	st, err := o.stream(ctx, ob.Stream)
	if err != nil {
		o.m.upload("segment", "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	st.stored(in, o.p.Now())
	over := st.bytes > o.p.StreamQuotaBytes
	if over { // a chunked body went past the quota: take it back
		if err := o.p.Backend.Delete(ctx, ob.Key()); err == nil {
			st.removed(ob.Key())
		}
	} else if len(st.uploads) < 4096 {
		st.uploads[ob.Key()] = took
	}
	fenced := c.Before(st.fence)
	fence := st.fence
	st.mu.Unlock()
	if over {
		o.overQuota(w, r, "segment", ob)
		return
	}
	if fenced { // a newer writer took over while this body arrived
		o.m.upload("segment", "fenced")
		o.fail(w, r, http.StatusConflict, "fenced", (&fencedError{cred: c, fence: fence}).Error(), nil)
		return
	}
	o.m.in(in.Size)
	o.m.latency.WithLabelValues("segment").Observe(took.Seconds())
	o.m.upload("segment", "ok")
	w.WriteHeader(http.StatusCreated)
}

// putPlaylist checks a playlist (every segment a media playlist lists must
// be stored) and commits it under the stream's lock.
func (o *Origin) putPlaylist(w http.ResponseWriter, r *http.Request, ob object, c hlscred.Cred, start time.Time) {
	ctx, cancel := storeContext(r)
	defer cancel()
	lr := &limitReader{r: r.Body, n: maxPlaylistBytes}
	body, err := io.ReadAll(lr)
	if errors.Is(err, errTooLarge) {
		o.tooLarge(w, r, "playlist", maxPlaylistBytes)
		return
	}
	if err != nil {
		o.m.upload("playlist", "bad_request")
		o.fail(w, r, http.StatusBadRequest, "body", "reading the request body failed", err)
		return
	}
	pl, err := parsePlaylist(body)
	if err != nil {
		o.m.upload("playlist", "bad_request")
		o.fail(w, r, http.StatusBadRequest, "bad_playlist", err.Error(), nil)
		return
	}
	st, err := o.stream(ctx, ob.Stream)
	if err != nil {
		o.m.upload("playlist", "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	var rs renditionState
	if ob.Kind == kindMedia {
		if status, msg, err := o.checkListed(ctx, st, ob, pl); status != 0 {
			st.mu.Unlock()
			result, code := "missing_segment", "missing_segment"
			if status >= 500 {
				result, code = "storage_error", "storage"
			}
			o.m.upload("playlist", result)
			o.fail(w, r, status, code, msg, err)
			return
		}
		prev, has := st.latest[ob.Rendition]
		d, err := nextSequence(ob, prev.pl, has, pl)
		if err != nil {
			st.mu.Unlock()
			o.m.upload("playlist", "sequence")
			o.fail(w, r, http.StatusConflict, "media_sequence", err.Error(), nil)
			return
		}
		// What is stored (and served) carries the origin's count of
		// discontinuities; being in the stored playlist, it survives an
		// origin restart with it (load reads it back).
		body = withDiscontinuitySequence(body, d)
		pl.DiscSeq = d
		if target := pinnedTarget(prev.pl, has, pl); target != pl.Target {
			body = withTargetDuration(body, target)
			pl.Target = target
		}
		rs = renditionOf(ob, pl)
	}
	if c.Before(st.fence) {
		f := &fencedError{cred: c, fence: st.fence}
		st.mu.Unlock()
		o.m.upload("playlist", "fenced")
		o.fail(w, r, http.StatusConflict, "fenced", f.Error(), nil)
		return
	}
	if st.bytes-st.files[ob.Key()].size+int64(len(body)) > o.p.StreamQuotaBytes {
		st.mu.Unlock()
		o.overQuota(w, r, "playlist", ob)
		return
	}
	in, err := o.p.Backend.Put(ctx, ob.Key(), bytes.NewReader(body))
	if err != nil {
		st.mu.Unlock()
		o.m.storageError()
		o.m.upload("playlist", "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	now := o.p.Now()
	st.stored(in, now)
	if ob.Kind == kindMedia {
		o.replaceRendition(st, ob, rs, now)
	}
	st.mu.Unlock()
	o.m.in(in.Size)
	o.m.latency.WithLabelValues("playlist").Observe(time.Since(start).Seconds())
	o.m.upload("playlist", "ok")
	w.WriteHeader(http.StatusCreated)
}

// checkListed returns 409 and a message naming the first URI in pl that is
// not a segment this origin holds (status 0 when all are held), with st.mu
// held. A segment this process stored is known from st.files; only the
// others (stored through another origin on a shared bucket, or before a
// restart and not yet listed) cost a Stat, so a playlist that adds one
// segment no longer makes a backend round trip per listed segment.
func (o *Origin) checkListed(ctx context.Context, st *streamState, ob object, pl playlist) (int, string, error) {
	for _, s := range pl.Segments {
		so, ok := resolve(ob, s.URI)
		if !ok {
			return http.StatusConflict, fmt.Sprintf("the playlist lists %q, which is not a segment of stream %d on this origin (relative URIs resolve within /hls/s/%d/%s/)",
				s.URI, ob.Stream, ob.Stream, ob.Rendition), nil
		}
		if _, known := st.files[so.Key()]; known {
			continue
		}
		_, err := o.p.Backend.Stat(ctx, so.Key())
		if errors.Is(err, ErrNotFound) {
			return http.StatusConflict, fmt.Sprintf("the playlist lists segment %q (%s), which the origin does not hold: upload the segment before the playlist", s.URI, so.Path()), nil
		}
		if err != nil {
			o.m.storageError()
			return http.StatusInternalServerError, "storage error", err
		}
	}
	return 0, "", nil
}

// replaceRendition makes rs the rendition's latest playlist: segments that
// left it get their retention deadline, and segments it lists for the
// first time are checked for slow uploads (st.mu held).
func (o *Origin) replaceRendition(st *streamState, ob object, rs renditionState, now time.Time) {
	old := st.latest[ob.Rendition]
	window := max(old.total, rs.total)
	for key, d := range old.keys {
		if _, still := rs.keys[key]; !still {
			st.departed[key] = now.Add(d + window)
		}
	}
	for key, d := range rs.keys {
		delete(st.departed, key)
		if took, ok := st.uploads[key]; ok {
			delete(st.uploads, key)
			if d > 0 && took > d*9/10 {
				o.log.Warn("slow segment upload: the rendition cannot keep up in real time", "stream", ob.Stream,
					"rendition", ob.Rendition, "segment", key, "upload", took.Round(time.Millisecond), "duration", d)
			}
		}
	}
	st.latest[ob.Rendition] = rs
}

// serveDelete deletes an object. A segment still listed by its rendition's
// latest playlist is refused; one inside its retention window is left to
// retention (202), so players that loaded an older playlist still get it.
func (o *Origin) serveDelete(w http.ResponseWriter, r *http.Request, ob object) {
	c, ok := o.authWrite(w, r, ob, "delete")
	if !ok {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	st := o.lockFenced(ctx, w, r, ob, c, "delete")
	if st == nil {
		return
	}
	defer st.mu.Unlock()
	key := ob.Key()
	now := o.p.Now()
	if ob.Kind == kindSegment {
		if st.listedAnywhere(key) {
			o.m.upload("delete", "listed")
			o.fail(w, r, http.StatusConflict, "listed", "the segment is listed by the latest media playlist; retention deletes it after it leaves", nil)
			return
		}
		if d, ok := st.departed[key]; ok && now.Before(d) {
			o.m.upload("delete", "ok")
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}
	if err := o.p.Backend.Delete(ctx, key); err != nil {
		o.m.storageError()
		o.m.upload("delete", "storage_error")
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	st.removed(key)
	if ob.Kind == kindMedia {
		delete(st.latest, ob.Rendition)
		delete(st.probes, ob.Rendition)
	}
	st.lastWrite = now
	o.m.upload("delete", "ok")
	w.WriteHeader(http.StatusNoContent)
}
