package hlsorigin

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// playlist is what the origin needs from an HLS playlist: the target
// duration, and for media playlists the URIs it lists with their
// durations (init sections from EXT-X-MAP have duration 0).
type playlist struct {
	Target   time.Duration
	Master   bool
	Segments []listed
	// MediaSeq is EXT-X-MEDIA-SEQUENCE (0 when absent, RFC 8216 4.3.3.2);
	// DiscSeq is EXT-X-DISCONTINUITY-SEQUENCE as written.
	MediaSeq int64
	DiscSeq  int64
}

// listed is a URI a playlist lists: a media segment, or an init section
// (Init, from EXT-X-MAP) that has no sequence number.
type listed struct {
	URI      string
	Duration time.Duration
	Init     bool
	Seq      int64 // media sequence number (media segments only)
	Disc     bool  // EXT-X-DISCONTINUITY before it
}

// Total is the sum of the listed segments' durations.
func (p playlist) Total() time.Duration {
	var t time.Duration
	for _, s := range p.Segments {
		t += s.Duration
	}
	return t
}

var errNotPlaylist = errors.New("not an HLS playlist: the first line must be #EXTM3U")

// parsePlaylist reads the lines the origin cares about and ignores the rest.
func parsePlaylist(b []byte) (playlist, error) {
	var p playlist
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), len(b)+1)
	first := true
	var dur time.Duration
	disc := false
	var n int64 // media segments so far
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if !strings.HasPrefix(line, "#EXTM3U") {
				return p, errNotPlaylist
			}
			first = false
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			if v, err := strconv.ParseFloat(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"), 64); err == nil {
				p.Target = seconds(v)
			}
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			p.MediaSeq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"):
			p.DiscSeq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 10, 64)
		case line == "#EXT-X-DISCONTINUITY":
			disc = true
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			dur = seconds(f)
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF"), strings.HasPrefix(line, "#EXT-X-I-FRAME-STREAM-INF"):
			p.Master = true
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if u := attr(line, "URI"); u != "" {
				p.Segments = append(p.Segments, listed{URI: u, Init: true})
			}
		case strings.HasPrefix(line, "#"):
		default:
			p.Segments = append(p.Segments, listed{URI: line, Duration: dur, Seq: p.MediaSeq + n, Disc: disc})
			n++
			dur, disc = 0, false
		}
	}
	if first {
		return p, errNotPlaylist
	}
	return p, sc.Err()
}

func seconds(v float64) time.Duration {
	if v <= 0 || math.IsNaN(v) || v > 86400 {
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

// attr is the quoted attribute name of a tag line (URI="...").
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

// resolve resolves a URI listed in the playlist at base (an origin object
// path) to the object it names on this origin, if any: relative URIs
// resolve within the playlist's directory; absolute ones must be paths of
// the same stream on this origin.
func resolve(base object, uri string) (object, bool) {
	u, err := url.Parse(uri)
	if err != nil {
		return object{}, false
	}
	b := &url.URL{Path: base.Path()}
	r := b.ResolveReference(&url.URL{Path: u.Path})
	if u.Scheme != "" || u.Host != "" {
		r = &url.URL{Path: u.Path}
	}
	o, ok := parsePath(r.Path)
	if !ok || o.Stream != base.Stream || o.playlist() {
		return object{}, false
	}
	return o, true
}

// playlistMaxAge is the Cache-Control max-age of a playlist: half its
// target duration (a reload interval is about one target), at least 1 s,
// at most 5 s; masters and playlists without a target get 1 s.
func playlistMaxAge(p playlist) int {
	return min(5, max(1, int(p.Target/time.Second)/2))
}
