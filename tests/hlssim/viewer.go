// Package hlssim simulates HLS viewers that behave like hls.js against the
// playlist rewriter: each reads the master playlist, picks a variant,
// reloads its media playlist every target duration (and discards a reload
// in which a segment it already listed has another URI, as hls.js ≥ 1.6
// does, comparing URIs without their query), follows the rewritten
// segment URIs to the CDN edges, reloads the content-steering manifest
// every TTL and moves to the pathway it puts first, and plays: a segment
// adds its duration to the buffer, the wall clock drains it, and an empty
// buffer is a stall. Viewers are goroutines with one HTTP client each (its
// own connections, like a browser).
package hlssim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Params configures a Run.
type Params struct {
	// Master is the viewer URL of the master playlist (with its token).
	Master string
	// Viewers is how many viewers play; they start over StartSpread.
	Viewers     int
	StartSpread time.Duration
	// Duration is how long each viewer plays after it starts.
	Duration time.Duration
	// Variant picks a viewer's variant index among n (default: random).
	Variant func(viewer, n int) int
	// LiveSync is how many segments behind the live edge a viewer starts
	// (hls.js liveSyncDurationCount, default 3).
	LiveSync int
	// Transport, when set, is shared by all viewers (default: one per viewer).
	Transport func() http.RoundTripper
}

// Stall is one interruption of a viewer's playback.
type Stall struct {
	At       time.Time
	Duration time.Duration
	// Source: the viewer spent under 250 ms of the stall on listed
	// segments (downloads, failures, retries) and the rest waiting for the
	// next segment to be listed: the live source ran late. Such stalls are
	// the encoder's (on a loaded machine, ffmpeg's), not the CDN's.
	Source bool
}

// ViewerStats is what one viewer saw.
type ViewerStats struct {
	Segments       int            // segments played
	Edges          map[string]int // segment requests per edge host
	Stalls         []Stall
	Discarded      int // playlist reloads discarded by the mismatch rule
	SegmentErrors  int
	PlaylistErrors int
	Pathways       []string // pathways in the order the viewer used them
	Target         time.Duration
	EdgeSwitches   int // consecutive segments from different edges
	// Requests are the viewer's successful segment requests.
	Requests []Request
	Err      error
}

// Request is one segment request that succeeded.
type Request struct {
	At   time.Time
	Host string // the edge
	Path string
}

// Result is a Run's outcome.
type Result struct {
	Viewers []*ViewerStats
}

// Run plays p.Viewers viewers until each has played p.Duration or ctx ends.
func Run(ctx context.Context, p Params) *Result {
	if p.LiveSync == 0 {
		p.LiveSync = 3
	}
	res := &Result{Viewers: make([]*ViewerStats, p.Viewers)}
	var wg sync.WaitGroup
	for i := range p.Viewers {
		delay := time.Duration(0)
		if p.StartSpread > 0 && p.Viewers > 1 {
			delay = p.StartSpread * time.Duration(i) / time.Duration(p.Viewers-1)
		}
		st := &ViewerStats{Edges: map[string]int{}}
		res.Viewers[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			var rt http.RoundTripper
			if p.Transport != nil {
				rt = p.Transport()
			} else {
				t := http.DefaultTransport.(*http.Transport).Clone()
				t.MaxIdleConnsPerHost = 4
				rt = t
				defer t.CloseIdleConnections()
			}
			v := &viewer{p: p, id: i, st: st, c: &http.Client{Transport: rt, Timeout: 10 * time.Second}, end: time.Now().Add(p.Duration)}
			st.Err = v.play(ctx)
		}()
	}
	wg.Wait()
	return res
}

type viewer struct {
	p   Params
	id  int
	st  *ViewerStats
	c   *http.Client
	end time.Time // the viewer stops between requests once past it
}

// variantURL is a media playlist URL with the pathway generation param.
func withParams(raw string, params map[string]string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (v *viewer) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", strings.SplitN(u, "?", 2)[0], resp.Status)
	}
	return b, err
}

type segment struct {
	seq int64
	dur time.Duration
	uri string
}

type media struct {
	target time.Duration
	seq    int64
	segs   []segment
}

func parseMedia(b []byte) (media, error) {
	var m media
	var dur time.Duration
	n := int64(0)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			f, _ := strconv.ParseFloat(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"), 64)
			m.target = time.Duration(f * float64(time.Second))
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			m.seq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXTINF:"):
			f, _ := strconv.ParseFloat(strings.SplitN(strings.TrimPrefix(line, "#EXTINF:"), ",", 2)[0], 64)
			dur = time.Duration(f * float64(time.Second))
		case line != "" && line[0] != '#':
			m.segs = append(m.segs, segment{seq: m.seq + n, dur: dur, uri: line})
			n++
		}
	}
	if m.target <= 0 || len(m.segs) == 0 {
		return m, errors.New("media playlist without target duration or segments")
	}
	return m, nil
}

type steeringDoc struct {
	TTL      int      `json:"TTL"`
	Priority []string `json:"PATHWAY-PRIORITY"`
	Clones   []struct {
		Base string `json:"BASE-ID"`
		ID   string `json:"ID"`
		URI  struct {
			Params map[string]string `json:"PARAMS"`
		} `json:"URI-REPLACEMENT"`
	} `json:"PATHWAY-CLONES"`
}

func noQuery(u string) string { return strings.SplitN(u, "?", 2)[0] }

// play is one viewer's session.
func (v *viewer) play(ctx context.Context) error {
	mb, err := v.get(ctx, v.p.Master)
	if err != nil {
		return err
	}
	var variants []string
	var steerURI, pathway string
	for _, line := range strings.Split(string(mb), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#EXT-X-CONTENT-STEERING:") {
			steerURI = attr(line, "SERVER-URI")
			pathway = attr(line, "PATHWAY-ID")
		} else if line != "" && line[0] != '#' {
			variants = append(variants, line)
		}
	}
	if len(variants) == 0 {
		return errors.New("master playlist without variants")
	}
	vi := rand.IntN(len(variants))
	if v.p.Variant != nil {
		vi = v.p.Variant(v.id, len(variants))
	}
	baseURL := variants[vi]
	mediaURL := baseURL
	v.st.Pathways = append(v.st.Pathways, pathway)

	var mu sync.Mutex // guards mediaURL, pathway (steering goroutine)
	if steerURI != "" {
		go func() {
			ttl := time.Second
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(ttl):
				}
				if time.Now().After(v.end) {
					return
				}
				mu.Lock()
				cur := pathway
				mu.Unlock()
				b, err := v.get(ctx, withParams(steerURI, map[string]string{"_HLS_pathway": cur}))
				var d steeringDoc
				if err != nil || json.Unmarshal(b, &d) != nil {
					continue
				}
				ttl = time.Duration(max(d.TTL, 1)) * time.Second
				if len(d.Priority) == 0 || d.Priority[0] == cur {
					continue
				}
				for _, c := range d.Clones {
					if c.ID == d.Priority[0] {
						mu.Lock()
						pathway, mediaURL = c.ID, withParams(baseURL, c.URI.Params)
						v.st.Pathways = append(v.st.Pathways, c.ID)
						mu.Unlock()
					}
				}
			}
		}()
	}

	listed := map[int64]string{} // seq → URI without query, of the pathway in use
	listedPath := ""
	var next int64 = -1
	var buffer time.Duration
	playing := false
	var stallFrom time.Time
	var fetchWait time.Duration // during the current stall: time spent on listed segments (downloads, failures, retries)
	lastTick := time.Now()
	lastEdge := ""
	var cur media
	reloadAt := time.Now()
	for {
		// Drain the buffer by the wall clock.
		now := time.Now()
		if playing {
			buffer -= now.Sub(lastTick)
			if buffer <= 0 {
				buffer = 0
				playing = false
				stallFrom = now
				fetchWait = 0
			}
		}
		lastTick = now
		if ctx.Err() != nil || now.After(v.end) {
			if !playing && !stallFrom.IsZero() {
				v.st.Stalls = append(v.st.Stalls, Stall{At: stallFrom, Duration: now.Sub(stallFrom), Source: fetchWait < 250*time.Millisecond})
			}
			return nil
		}
		if !now.Before(reloadAt) {
			mu.Lock()
			mu2, pw := mediaURL, pathway
			mu.Unlock()
			b, err := v.get(ctx, mu2)
			if err != nil {
				if ctx.Err() == nil {
					v.st.PlaylistErrors++
				}
				reloadAt = now.Add(time.Second)
			} else if m, err := parseMedia(b); err == nil {
				if pw != listedPath {
					listed, listedPath = map[int64]string{}, pw
				}
				ok := true
				for _, s := range m.segs {
					if old, seen := listed[s.seq]; seen && old != noQuery(s.uri) {
						ok = false
					}
				}
				if !ok {
					v.st.Discarded++ // hls.js: "media sequence mismatch", reload ignored
				} else {
					for _, s := range m.segs {
						listed[s.seq] = noQuery(s.uri)
					}
					cur = m
					v.st.Target = m.target
				}
				reloadAt = now.Add(m.target)
			}
		}
		// Fetch the next segment when the buffer has room (hls.js keeps
		// about 30 s ahead at most; live, the playlist limits it).
		var seg *segment
		if len(cur.segs) > 0 {
			if next < 0 {
				next = cur.segs[max(len(cur.segs)-v.p.LiveSync, 0)].seq
			}
			for i := range cur.segs {
				if cur.segs[i].seq == next {
					seg = &cur.segs[i]
				}
			}
			if seg == nil && next < cur.segs[0].seq {
				next = cur.segs[0].seq // fell out of the window: skip ahead
			}
		}
		if seg == nil {
			v.sleep(ctx, min(time.Until(reloadAt), 100*time.Millisecond))
			continue
		}
		u, _ := url.Parse(seg.uri)
		t0 := time.Now()
		_, err := v.get(ctx, seg.uri)
		if !playing && !stallFrom.IsZero() {
			fetchWait += time.Since(t0)
			if err != nil {
				fetchWait += 500 * time.Millisecond // the retry pause below
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				v.st.SegmentErrors++
				v.sleep(ctx, 500*time.Millisecond) // hls.js retries; the pathway may change meanwhile
				// A retry re-reads the playlist of the current pathway first.
				mu.Lock()
				if listedPath != pathway {
					reloadAt = time.Now()
				}
				mu.Unlock()
			}
			continue
		}
		host := u.Host
		v.st.Edges[host]++
		v.st.Requests = append(v.st.Requests, Request{At: time.Now(), Host: host, Path: u.Path})
		if lastEdge != "" && lastEdge != host {
			v.st.EdgeSwitches++
		}
		lastEdge = host
		v.st.Segments++
		next++
		buffer += seg.dur
		if !playing {
			if !stallFrom.IsZero() {
				v.st.Stalls = append(v.st.Stalls, Stall{At: stallFrom, Duration: time.Since(stallFrom), Source: fetchWait < 250*time.Millisecond})
			}
			playing = true
			lastTick = time.Now()
		}
	}
}

func (v *viewer) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// attr reads NAME="value" from a tag line.
func attr(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}
