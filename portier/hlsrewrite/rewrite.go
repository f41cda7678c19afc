package hlsrewrite

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/hlssign"
)

// rewriteMedia rewrites a media playlist of stream id (at origin path
// opath) for pathway generation g: every segment (and EXT-X-MAP) URI
// becomes a signed absolute URL on its frozen edge.
//
// Every viewer of one origin playlist version on one pathway gets the same
// bytes (tokens are not in media playlists, and a pathway's URIs are
// frozen: a pathway's output changes only with the origin playlist, since
// an edge leaving starts a new pathway), so the result is kept until the
// origin playlist or the signature changes: the next viewer's reload is a
// map lookup.
func (r *Rewriter) rewriteMedia(body []byte, id int64, opath string, g int64, set *edgeSet) ([]byte, error) {
	prefix := hlssign.StreamPrefix(id)
	q := r.signQuery(prefix)
	now := r.p.Now()
	target := targetDuration(body)
	w := r.book.reload(opath, target, now)
	key := renderKey{path: opath, gen: g}
	r.renderMu.Lock()
	c, ok := r.rendered[key]
	r.renderMu.Unlock()
	if ok && len(body) > 0 && c.src == &body[0] && c.q == q {
		return c.out, nil
	}
	out, err := r.rewriteMediaNow(body, id, opath, g, set, prefix, q, w, target, now)
	if err == nil && len(body) > 0 {
		r.renderMu.Lock()
		r.rendered[key] = rendered{src: &body[0], q: q, out: out}
		r.renderMu.Unlock()
	}
	return out, err
}

// renderKey and rendered are a cached media playlist rewrite.
type renderKey struct {
	path string
	gen  int64
}

type rendered struct {
	src *byte // the origin body it was made from (identity)
	q   string
	out []byte
}

func (r *Rewriter) rewriteMediaNow(body []byte, id int64, opath string, g int64, set *edgeSet, prefix, q string, w float64, target time.Duration, now time.Time) ([]byte, error) {
	t := r.table(id)
	loads := r.book.loads(set, now)
	var b strings.Builder
	b.Grow(len(body) + len(body)/2)
	t.mu.Lock()
	for _, line := range lines(body) {
		switch {
		case line == "":
		case line[0] != '#':
			if p, ok := resolve(opath, line, prefix); ok {
				x, ok := r.assign(t, p, g, set, loads, w, target, now)
				if !ok {
					t.mu.Unlock()
					return nil, errNoEdge
				}
				line = x.base + p + "?" + q
			}
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if v, s, e, ok := uriAttr(line); ok {
				if p, ok := resolve(opath, v, prefix); ok {
					if x, ok := r.assign(t, p, g, set, loads, w, target, now); ok {
						line = line[:s] + x.base + p + "?" + q + line[e:]
					}
				}
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	t.mu.Unlock()
	return []byte(b.String()), nil
}

// rewriteMaster rewrites the master playlist: media playlist URIs point
// back at this rewriter (with the viewer's token and pathway generation
// g), every variant is on pathway "gG", and EXT-X-CONTENT-STEERING names
// the steering manifest.
func (r *Rewriter) rewriteMaster(body []byte, id int64, v viewerReq, g int64, base, tok string) []byte {
	prefix := hlssign.StreamPrefix(id)
	mpath := prefix + "master.m3u8"
	vbase := base + "/hls/" + url.PathEscape(v.appSeg) + "/" + url.PathEscape(v.name) + "/"
	pw := "g" + strconv.FormatInt(g, 10)
	extra := "pw=" + strconv.FormatInt(g, 10)
	if tok != "" {
		extra += "&token=" + url.QueryEscape(tok)
	}
	media := func(uri string) (string, bool) {
		p, ok := resolve(mpath, uri, prefix)
		if !ok {
			return "", false
		}
		rend, file, ok := strings.Cut(strings.TrimPrefix(p, prefix), "/")
		if !ok || file != "index.m3u8" || !validName(rend) {
			return "", false
		}
		return vbase + rend + "/index.m3u8?" + extra, true
	}
	steer := vbase + "steering.json?base=" + strconv.FormatInt(g, 10)
	if tok != "" {
		steer += "&token=" + url.QueryEscape(tok)
	}
	var b strings.Builder
	ls := lines(body)
	for i, line := range ls {
		switch {
		case i == 0 && strings.HasPrefix(line, "#EXTM3U"):
			b.WriteString(line + "\n")
			b.WriteString(`#EXT-X-CONTENT-STEERING:SERVER-URI="` + steer + `",PATHWAY-ID="` + pw + `"` + "\n")
			continue
		case strings.HasPrefix(line, "#EXT-X-CONTENT-STEERING:"):
			continue // the origin's own, if any: ours replaces it
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			if !strings.Contains(line, "PATHWAY-ID=") {
				line += `,PATHWAY-ID="` + pw + `"`
			}
		case strings.HasPrefix(line, "#EXT-X-I-FRAME-STREAM-INF:"):
			// The rewriter serves index.m3u8 playlists only: an I-frame
			// playlist it cannot serve is left out, not listed broken.
			u, s, e, ok := uriAttr(line)
			if !ok {
				continue
			}
			nu, ok := media(u)
			if !ok {
				continue
			}
			line = line[:s] + nu + line[e:]
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			if u, s, e, ok := uriAttr(line); ok {
				if nu, ok := media(u); ok {
					line = line[:s] + nu + line[e:]
				}
			}
		case line != "" && line[0] != '#':
			if nu, ok := media(line); ok {
				line = nu
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// steering is an HLS content steering manifest (draft-pantos-hls-rfc8216bis
// and Apple's "HLS Content Steering Specification", VERSION 1).
type steering struct {
	Version  int         `json:"VERSION"`
	TTL      int         `json:"TTL"`
	Reload   string      `json:"RELOAD-URI,omitempty"`
	Priority []string    `json:"PATHWAY-PRIORITY"`
	Clones   []pathClone `json:"PATHWAY-CLONES,omitempty"`
}

type pathClone struct {
	Base string     `json:"BASE-ID"`
	ID   string     `json:"ID"`
	URI  uriReplace `json:"URI-REPLACEMENT"`
}

type uriReplace struct {
	Params map[string]string `json:"PARAMS,omitempty"`
}

// serveSteering answers the steering manifest: the current generation's
// pathway first, cloned from the master's pathway (base) with pw set.
func (r *Rewriter) serveSteering(w http.ResponseWriter, req *http.Request, v viewerReq, set *edgeSet, base, tok string) {
	b, _ := strconv.ParseInt(req.URL.Query().Get("base"), 10, 64)
	b = min(max(b, 0), set.gen)
	cur := "g" + strconv.FormatInt(set.gen, 10)
	s := steering{Version: 1, TTL: max(int(r.p.SteeringTTL.Seconds()), 1), Priority: []string{cur}}
	if b != set.gen {
		s.Clones = []pathClone{{Base: "g" + strconv.FormatInt(b, 10), ID: cur,
			URI: uriReplace{Params: map[string]string{"pw": strconv.FormatInt(set.gen, 10)}}}}
		s.Priority = append(s.Priority, "g"+strconv.FormatInt(b, 10))
	}
	out, _ := json.Marshal(s)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	r.m.request("steering", http.StatusOK)
	_, _ = w.Write(out)
}
