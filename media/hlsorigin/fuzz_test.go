package hlsorigin

import (
	"strings"
	"testing"
)

// Whatever the path, an accepted one round-trips and names a key with no
// dot segment or empty part: nothing outside the stream can be reached.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/hls/s/1/master.m3u8", "/hls/s/1/v0/index.m3u8", "/hls/s/9/v0/seg_1.ts", "/hls/s/1/../2/master.m3u8",
		"/hls/s/1/v0/..ts", "/hls/s/1/v0/a/b.ts", "/hls/s/00/x.ts", "/hls/s/1/v0/init.mp4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		o, ok := parsePath(p)
		if !ok {
			return
		}
		if o.Path() != p {
			t.Fatalf("%q parsed to %q", p, o.Path())
		}
		for _, part := range strings.Split(o.Key(), "/") {
			if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
				t.Fatalf("%q gives key %q", p, o.Key())
			}
		}
	})
}

// A playlist never makes the origin look outside the playlist's stream.
func FuzzParsePlaylist(f *testing.F) {
	f.Add("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_1.ts\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	f.Add("#EXTM3U\n#EXTINF:2,\n../../2/v0/a.ts\n#EXTINF:2,\nhttp://x/hls/s/1/v0/a.ts\n")
	f.Add("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8\n")
	f.Fuzz(func(t *testing.T, text string) {
		pl, err := parsePlaylist([]byte(text))
		if err != nil {
			return
		}
		base := object{Stream: 1, Rendition: "v0", Name: "index.m3u8", Kind: kindMedia}
		for _, s := range pl.Segments {
			if o, ok := resolve(base, s.URI); ok && (o.Stream != 1 || o.Kind != kindSegment) {
				t.Fatalf("%q resolves to %+v", s.URI, o)
			}
		}
		if a := playlistMaxAge(pl); a < 1 || a > 5 {
			t.Fatalf("max-age %d", a)
		}
	})
}
