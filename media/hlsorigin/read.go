package hlsorigin

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

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

// serveRead serves GET and HEAD (Range, ETag, Last-Modified through
// http.ServeContent) to holders of the cluster token.
func (o *Origin) serveRead(w http.ResponseWriter, r *http.Request, ob object) {
	if !o.isClusterToken(bearer(r)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="portier-hls"`)
		o.fail(w, r, http.StatusUnauthorized, "unauthorized", "reads need Authorization: Bearer with the cluster token", nil)
		return
	}
	rc, in, err := o.p.Backend.Open(r.Context(), ob.Key())
	if errors.Is(err, ErrNotFound) {
		o.fail(w, r, http.StatusNotFound, "not_found", "no such object", nil)
		return
	}
	if err != nil {
		o.m.storageError()
		o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", ob.contentType())
	h.Set("ETag", in.ETag)
	var content io.ReadSeeker = rc
	mod := in.ModTime
	if ob.playlist() {
		b, err := io.ReadAll(io.LimitReader(rc, maxPlaylistBytes+1))
		if err != nil {
			o.m.storageError()
			o.fail(w, r, http.StatusInternalServerError, "storage", "storage error", err)
			return
		}
		age := 1
		if pl, err := parsePlaylist(b); err == nil && ob.Kind == kindMedia {
			age = playlistMaxAge(pl)
		}
		h.Set("Cache-Control", "max-age="+strconv.Itoa(age))
		if ob.Kind == kindMaster {
			// Completed from measurements that change with every
			// segment: validated by its bytes, not by the stored
			// object's time.
			b = o.completeMaster(r.Context(), ob, b)
			h.Set("ETag", contentETag(b))
			mod = time.Time{}
		}
		content = bytes.NewReader(b)
	} else {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", mod, content)
	o.m.out(cw.n)
}
