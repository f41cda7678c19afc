package hlsorigin

import (
	"regexp"
	"strconv"
	"strings"
)

// PathPrefix is where the origin serves streams: /hls/s/{streamID}/{file}.
const PathPrefix = "/hls/s/"

var (
	streamIDRE  = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)
	renditionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	// segmentRE is the contract's [A-Za-z0-9_.-] ending in .ts, .m4s or
	// .mp4, except that a leading dot is refused: hidden names are the
	// backend's own (temporary files).
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}\.(ts|m4s|mp4)$`)
)

// fileKind is what a path names.
type fileKind int

const (
	kindMaster  fileKind = iota + 1 // master.m3u8
	kindMedia                       // {rendition}/index.m3u8
	kindSegment                     // {rendition}/{segment}
)

// object is a parsed, valid object path.
type object struct {
	Stream    int64
	Rendition string // empty for the master playlist
	Name      string // master.m3u8, index.m3u8 or the segment's name
	Kind      fileKind
}

// Key is the object's backend key: s/{stream}/{file}.
func (o object) Key() string {
	if o.Rendition == "" {
		return streamPrefix(o.Stream) + o.Name
	}
	return streamPrefix(o.Stream) + o.Rendition + "/" + o.Name
}

// Path is the object's URL path on the origin.
func (o object) Path() string { return "/hls/" + o.Key() }

func (o object) playlist() bool { return o.Kind == kindMaster || o.Kind == kindMedia }

func streamPrefix(id int64) string { return "s/" + strconv.FormatInt(id, 10) + "/" }

// fenceKey holds a stream's fencing pair. It is outside the stream's
// prefix so that retention, which removes a stream's files, keeps it.
func fenceKey(id int64) string { return "fence/" + strconv.FormatInt(id, 10) + ".json" }

// parsePath parses an origin URL path. Anything but the three accepted
// shapes is refused: other files, other depths, dot segments, escapes.
func parsePath(p string) (object, bool) {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	if !ok {
		return object{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || !streamIDRE.MatchString(parts[0]) {
		return object{}, false
	}
	id, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return object{}, false
	}
	o := object{Stream: id}
	switch {
	case len(parts) == 2 && parts[1] == "master.m3u8":
		o.Name, o.Kind = parts[1], kindMaster
	case len(parts) == 3 && renditionRE.MatchString(parts[1]) && parts[2] == "index.m3u8":
		o.Rendition, o.Name, o.Kind = parts[1], parts[2], kindMedia
	case len(parts) == 3 && renditionRE.MatchString(parts[1]) && segmentRE.MatchString(parts[2]):
		o.Rendition, o.Name, o.Kind = parts[1], parts[2], kindSegment
	default:
		return object{}, false
	}
	return o, true
}

// parseKey is parsePath for a backend key (s/...).
func parseKey(key string) (object, bool) { return parsePath("/hls/" + key) }

// contentType is the object's Content-Type.
func (o object) contentType() string {
	switch {
	case o.playlist():
		return "application/vnd.apple.mpegurl"
	case strings.HasSuffix(o.Name, ".ts"):
		return "video/mp2t"
	default:
		return "video/mp4"
	}
}
