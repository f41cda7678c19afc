package hlsrewrite

import (
	"bytes"
	"path"
	"strconv"
	"strings"
	"time"
)

// targetDuration is a media playlist's EXT-X-TARGETDURATION, or 0.
func targetDuration(b []byte) time.Duration {
	i := bytes.Index(b, []byte("#EXT-X-TARGETDURATION:"))
	if i < 0 {
		return 0
	}
	rest := b[i+len("#EXT-X-TARGETDURATION:"):]
	if j := bytes.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(rest)), 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n * float64(time.Second))
}

// resolve resolves a playlist URI against the directory of the playlist
// at base (an origin path) and returns the origin path it names, or false
// when it is absolute (another host) or leaves the stream's prefix.
func resolve(base, uri, prefix string) (string, bool) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	if uri == "" || strings.Contains(uri, "://") || strings.HasPrefix(uri, "//") {
		return "", false
	}
	p := uri
	if !strings.HasPrefix(uri, "/") {
		p = path.Join(path.Dir(base), uri)
	}
	p = path.Clean(p)
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	return p, true
}

// uriAttr returns the value of the URI="…" attribute of a tag line and
// where it starts and ends in line.
func uriAttr(line string) (val string, start, end int, ok bool) {
	i := strings.Index(line, `URI="`)
	if i < 0 || (i > 0 && line[i-1] != ':' && line[i-1] != ',') {
		return "", 0, 0, false
	}
	start = i + len(`URI="`)
	j := strings.IndexByte(line[start:], '"')
	if j < 0 {
		return "", 0, 0, false
	}
	return line[start : start+j], start, start + j, true
}

// lines splits a playlist into lines without their line ends.
func lines(b []byte) []string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}
