// Package hlscheck checks what an HLS writer published against the promises
// of Portier's HLS task: every EXTINF within the target duration, a target
// duration that never changes, a media
// sequence that never decreases (across restarts too), a sequence number
// that always names the same segment, an EXT-X-DISCONTINUITY-SEQUENCE that
// counts the discontinuities that left the window, a master playlist whose
// variants carry measured BANDWIDTH, AVERAGE-BANDWIDTH, CODECS and, for
// video, RESOLUTION and FRAME-RATE, program date times, and no segment
// URL with two different contents: written twice with different bytes
// (a Recorder in front of the writer) or served twice with different
// bytes (ReadSegments against the real origin), and every write carrying
// the expected credential.
//
// A Checker is fed playlist versions as they are seen: by a Recorder (every
// PUT), or by Poll, which reads them through a Fetch function, so the same
// checks run against the real HLS origin.
package hlscheck

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Segment is one media segment of a media playlist.
type Segment struct {
	Seq             int64
	URI             string
	Duration        float64
	Discontinuity   bool      // EXT-X-DISCONTINUITY before it
	ProgramDateTime time.Time // zero without EXT-X-PROGRAM-DATE-TIME
}

// Media is one version of a media playlist.
type Media struct {
	TargetDuration int
	MediaSequence  int64
	// DiscontinuitySequence is EXT-X-DISCONTINUITY-SEQUENCE (0 when
	// absent); HasDiscontinuitySequence tells whether it was written.
	DiscontinuitySequence    int64
	HasDiscontinuitySequence bool
	Independent              bool // EXT-X-INDEPENDENT-SEGMENTS
	EndList                  bool
	Segments                 []Segment
}

// ParseMedia parses a media playlist (the tags the checks need).
func ParseMedia(b []byte) (Media, error) {
	var m Media
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	var next Segment
	target := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if first {
			if line != "#EXTM3U" {
				return m, fmt.Errorf("playlist does not start with #EXTM3U")
			}
			first = false
			continue
		}
		tag, val, _ := strings.Cut(line, ":")
		var err error
		switch tag {
		case "#EXT-X-TARGETDURATION":
			m.TargetDuration, err = strconv.Atoi(val)
			target = true
		case "#EXT-X-MEDIA-SEQUENCE":
			m.MediaSequence, err = strconv.ParseInt(val, 10, 64)
		case "#EXT-X-DISCONTINUITY-SEQUENCE":
			m.DiscontinuitySequence, err = strconv.ParseInt(val, 10, 64)
			m.HasDiscontinuitySequence = true
		case "#EXT-X-INDEPENDENT-SEGMENTS":
			m.Independent = true
		case "#EXT-X-ENDLIST":
			m.EndList = true
		case "#EXT-X-DISCONTINUITY":
			next.Discontinuity = true
		case "#EXT-X-PROGRAM-DATE-TIME":
			next.ProgramDateTime, err = parsePDT(val)
		case "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			next.Duration, err = strconv.ParseFloat(d, 64)
		default:
			if strings.HasPrefix(line, "#") {
				continue
			}
			next.URI = line
			next.Seq = m.MediaSequence + int64(len(m.Segments))
			m.Segments = append(m.Segments, next)
			next = Segment{}
		}
		if err != nil {
			return m, fmt.Errorf("%s: %v", tag, err)
		}
	}
	if first {
		return m, fmt.Errorf("empty playlist")
	}
	if !target {
		return m, fmt.Errorf("no EXT-X-TARGETDURATION")
	}
	return m, sc.Err()
}

// parsePDT reads ISO 8601 as ffmpeg writes it (+0000) and as RFC 3339 has it.
func parsePDT(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q", v)
}

// Variant is one EXT-X-STREAM-INF of a master playlist.
type Variant struct {
	URI   string
	Attrs map[string]string // BANDWIDTH, CODECS (unquoted), RESOLUTION, ...
}

// ParseMaster parses a master playlist's variants.
func ParseMaster(b []byte) ([]Variant, error) {
	var out []Variant
	var attrs map[string]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			attrs = parseAttrs(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"))
		case strings.HasPrefix(line, "#"):
		case attrs != nil:
			out = append(out, Variant{URI: line, Attrs: attrs})
			attrs = nil
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variants in the master playlist")
	}
	return out, sc.Err()
}

// parseAttrs splits an attribute list (quoted values may hold commas).
func parseAttrs(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				end = len(rest) - 1
			}
			v, rest = rest[1:end+1], rest[min(end+2, len(rest)):]
		} else {
			v, rest, _ = strings.Cut(rest, ",")
			rest = "," + rest
		}
		out[strings.TrimSpace(k)] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return out
}

// Checker follows the versions of media playlists (by URL or path) and
// collects every broken promise. Safe for concurrent use.
type Checker struct {
	mu       sync.Mutex
	versions map[string][]Media
	bySeq    map[string]map[int64]string
	problems []string
	// needPDT: a new segment without EXT-X-PROGRAM-DATE-TIME is a problem.
	needPDT bool
	// served: the hash of the bytes each segment URL served first.
	served map[string][32]byte
	origin bool // OriginChecks
}

// NewChecker returns an empty Checker.
func NewChecker() *Checker {
	return &Checker{versions: map[string][]Media{}, bySeq: map[string]map[int64]string{}, served: map[string][32]byte{}}
}

// RequireProgramDateTime makes every segment without an
// EXT-X-PROGRAM-DATE-TIME a problem (Portier's HLS task writes one per
// segment; a generic writer need not). It returns c.
func (c *Checker) RequireProgramDateTime() *Checker {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.needPDT = true
	return c
}

func (c *Checker) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Media checks one version of the media playlist at url against itself
// and the versions seen before.
func (c *Checker) Media(url string, body []byte) {
	m, err := ParseMedia(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.problem("%s: %v", url, err)
		return
	}
	for _, s := range m.Segments {
		// RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer,
		// is at most the target duration.
		if math.Round(s.Duration) > float64(m.TargetDuration) {
			c.problem("%s: segment %d (%s) EXTINF %.3f > TARGETDURATION %d", url, s.Seq, s.URI, s.Duration, m.TargetDuration)
		}
	}
	prev := c.versions[url]
	if n := len(prev); n > 0 && m.MediaSequence < prev[n-1].MediaSequence {
		c.problem("%s: EXT-X-MEDIA-SEQUENCE went down from %d to %d", url, prev[n-1].MediaSequence, m.MediaSequence)
	}
	// RFC 8216 6.2.1: the target duration of a media playlist never changes.
	if n := len(prev); n > 0 && m.TargetDuration != prev[n-1].TargetDuration {
		c.problem("%s: EXT-X-TARGETDURATION changed from %d to %d", url, prev[n-1].TargetDuration, m.TargetDuration)
	}
	if n := len(prev); n > 0 && c.origin {
		c.checkDiscontinuitySequence(url, prev[n-1], m)
	}
	seen := c.bySeq[url]
	if seen == nil {
		seen = map[int64]string{}
		c.bySeq[url] = seen
	}
	for _, s := range m.Segments {
		u, ok := seen[s.Seq]
		if ok && u != s.URI {
			c.problem("%s: sequence number %d was %s, now %s", url, s.Seq, u, s.URI)
		}
		// Checked once per segment, when it is first listed.
		if !ok && c.needPDT && s.ProgramDateTime.IsZero() {
			c.problem("%s: segment %d (%s) has no EXT-X-PROGRAM-DATE-TIME", url, s.Seq, s.URI)
		}
		seen[s.Seq] = s.URI
	}
	c.versions[url] = append(prev, m)
}

// checkDiscontinuitySequence checks RFC 8216 6.2.2 between two versions:
// EXT-X-DISCONTINUITY-SEQUENCE never decreases and grows by the number of
// EXT-X-DISCONTINUITY tags of the segments that left the window (exactly
// when the two windows touch or overlap; at least that when segments were
// published and removed between the two versions seen).
func (c *Checker) checkDiscontinuitySequence(url string, prev, m Media) {
	if m.MediaSequence < prev.MediaSequence {
		return // reported as a decreasing media sequence
	}
	want := prev.DiscontinuitySequence
	for _, s := range prev.Segments {
		if s.Discontinuity && s.Seq < m.MediaSequence {
			want++
		}
	}
	gap := len(prev.Segments) > 0 && m.MediaSequence > prev.Segments[len(prev.Segments)-1].Seq+1
	switch {
	case m.DiscontinuitySequence < prev.DiscontinuitySequence:
		c.problem("%s: EXT-X-DISCONTINUITY-SEQUENCE went down from %d to %d", url, prev.DiscontinuitySequence, m.DiscontinuitySequence)
	case !gap && m.DiscontinuitySequence != want:
		c.problem("%s: EXT-X-DISCONTINUITY-SEQUENCE %d at media sequence %d, want %d (%d before, plus the discontinuities that left the window)",
			url, m.DiscontinuitySequence, m.MediaSequence, want, prev.DiscontinuitySequence)
	case gap && m.DiscontinuitySequence < want:
		c.problem("%s: EXT-X-DISCONTINUITY-SEQUENCE %d at media sequence %d, want at least %d", url, m.DiscontinuitySequence, m.MediaSequence, want)
	}
}

// Master checks a master playlist's variants. media maps each variant's
// URI to the media playlist read after the master; a variant whose media
// playlist lists segments must carry what the origin measures: BANDWIDTH
// and AVERAGE-BANDWIDTH (RFC 8216 4.3.4.2, AVERAGE-BANDWIDTH at most
// BANDWIDTH), CODECS, and for a variant with video (avc1 or hvc1 in
// CODECS) RESOLUTION and FRAME-RATE.
func (c *Checker) Master(url string, vs []Variant, media map[string]Media) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range vs {
		m, ok := media[v.URI]
		if !ok || len(m.Segments) == 0 {
			continue
		}
		a := v.Attrs
		bw, err1 := strconv.ParseInt(a["BANDWIDTH"], 10, 64)
		avg, err2 := strconv.ParseInt(a["AVERAGE-BANDWIDTH"], 10, 64)
		switch {
		case err1 != nil || bw <= 0:
			c.problem("%s: variant %s: BANDWIDTH %q", url, v.URI, a["BANDWIDTH"])
		case err2 != nil || avg <= 0:
			c.problem("%s: variant %s: AVERAGE-BANDWIDTH %q", url, v.URI, a["AVERAGE-BANDWIDTH"])
		case avg > bw:
			c.problem("%s: variant %s: AVERAGE-BANDWIDTH %d above BANDWIDTH %d", url, v.URI, avg, bw)
		}
		codecs := a["CODECS"]
		if codecs == "" {
			c.problem("%s: variant %s has no CODECS", url, v.URI)
		}
		if strings.Contains(codecs, "avc1.") || strings.Contains(codecs, "hvc1.") {
			if w, h, ok := strings.Cut(a["RESOLUTION"], "x"); !ok || atoiPositive(w) == 0 || atoiPositive(h) == 0 {
				c.problem("%s: variant %s (video) RESOLUTION %q", url, v.URI, a["RESOLUTION"])
			}
			if f, err := strconv.ParseFloat(a["FRAME-RATE"], 64); err != nil || f <= 0 {
				c.problem("%s: variant %s (video) FRAME-RATE %q", url, v.URI, a["FRAME-RATE"])
			}
		}
	}
}

func atoiPositive(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Problems returns every broken promise seen so far.
func (c *Checker) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// Versions returns the versions of the media playlist at url, in the order seen.
func (c *Checker) Versions(url string) []Media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Media(nil), c.versions[url]...)
}

// URLs returns the media playlists seen.
func (c *Checker) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.versions))
	for u := range c.versions {
		out = append(out, u)
	}
	return out
}

// Fetch reads a URL: an HTTP GET against an origin, or a Recorder's store.
type Fetch func(url string) ([]byte, error)

// Poll reads the master playlist at masterURL and each media playlist it
// lists once, and checks them; with OriginChecks it reads the master again
// afterwards and checks it against those media playlists (Master). It
// returns the master's variants.
func (c *Checker) Poll(fetch Fetch, masterURL string) ([]Variant, error) {
	b, err := fetch(masterURL)
	if err != nil {
		return nil, fmt.Errorf("master playlist: %w", err)
	}
	vs, err := ParseMaster(b)
	if err != nil {
		return nil, err
	}
	media := map[string]Media{}
	for _, v := range vs {
		u := resolve(masterURL, v.URI)
		mb, err := fetch(u)
		if err != nil {
			return vs, fmt.Errorf("media playlist %s: %w", u, err)
		}
		c.Media(u, mb)
		if m, err := ParseMedia(mb); err == nil {
			media[v.URI] = m
		}
	}
	c.mu.Lock()
	origin := c.origin
	c.mu.Unlock()
	if !origin {
		return vs, nil
	}
	// The master again, read after the media playlists: each variant
	// whose media playlist listed a segment must be complete in it.
	b, err = fetch(masterURL)
	if err != nil {
		return vs, fmt.Errorf("master playlist: %w", err)
	}
	vs2, err := ParseMaster(b)
	if err != nil {
		return vs, err
	}
	c.Master(masterURL, vs2, media)
	return vs, nil
}

// Segment checks the bytes that the segment at url served: a URL that
// serves other bytes than it did before is a problem (a segment URL names
// one segment forever; its cache headers say immutable).
func (c *Checker) Segment(url string, body []byte) {
	h := sha256.Sum256(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.served[url]; ok && old != h {
		c.problem("%s: served %d bytes (sha256 %x) after other bytes (sha256 %x)", url, len(body), h[:6], old[:6])
		return
	}
	c.served[url] = h
}

// ReadSegments reads through fetch every segment listed in the latest
// version of each media playlist seen, and checks its bytes with Segment.
// Read again, a URL read before proves it still serves the same bytes. It
// returns how many segments it read and the first read error.
func (c *Checker) ReadSegments(fetch Fetch) (int, error) {
	c.mu.Lock()
	var urls []string
	for pl, vs := range c.versions {
		for _, s := range vs[len(vs)-1].Segments {
			urls = append(urls, resolve(pl, s.URI))
		}
	}
	c.mu.Unlock()
	var first error
	n := 0
	for _, u := range urls {
		b, err := fetch(u)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("segment %s: %w", u, err)
			}
			continue
		}
		c.Segment(u, b)
		n++
	}
	return n, first
}

// resolve makes uri, listed in the playlist at base, a URL (or path).
func resolve(base, uri string) string {
	if strings.Contains(uri, "://") || strings.HasPrefix(uri, "/") {
		return uri
	}
	return base[:strings.LastIndex(base, "/")+1] + uri
}

// OriginChecks turns on the checks of what Portier's HLS origin adds to
// ffmpeg 5.1's playlists: EXT-X-DISCONTINUITY-SEQUENCE in media playlists,
// and (in Poll) the master playlist's measured attributes (Master).
// ffmpeg's own output, as a Recorder sees it, has neither.
func (c *Checker) OriginChecks() *Checker {
	c.mu.Lock()
	c.origin = true
	c.mu.Unlock()
	return c
}
