package hlsorigin

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// discPlaylist is a media playlist of 2 s segments named SEQ.ts from
// first to last, with EXT-X-DISCONTINUITY before the ones in disc.
func discPlaylist(first, last int, disc ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	for s := first; s <= last; s++ {
		for _, d := range disc {
			if d == s {
				b.WriteString("#EXT-X-DISCONTINUITY\n")
			}
		}
		fmt.Fprintf(&b, "#EXTINF:2.000,\n%d.ts\n", s)
	}
	return b.String()
}

func (e *env) discSeq(path string) int64 {
	e.t.Helper()
	st, _, b := e.do(http.MethodGet, path, token, nil)
	if st != 200 {
		e.t.Fatalf("GET %s = %d", path, st)
	}
	pl, err := parsePlaylist([]byte(b))
	if err != nil {
		e.t.Fatal(err)
	}
	if n := strings.Count(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"); n != 1 {
		e.t.Fatalf("GET %s: %d EXT-X-DISCONTINUITY-SEQUENCE tags, want 1:\n%s", path, n, b)
	}
	if i, j := strings.Index(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"), strings.Index(b, "#EXTINF"); j >= 0 && i > j {
		e.t.Fatalf("GET %s: EXT-X-DISCONTINUITY-SEQUENCE after the first segment:\n%s", path, b)
	}
	return pl.DiscSeq
}

// TestDiscontinuitySequence: the origin writes EXT-X-DISCONTINUITY-SEQUENCE
// into every stored media playlist, counting the discontinuities that
// left the window (a first run's discont_start, then a restart's, as the
// HLS task writes them), never decreasing, and keeps counting after an
// origin restart (the count is read back from the stored playlist).
func TestDiscontinuitySequence(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Params{})
	const pl = "/hls/s/1/v0/index.m3u8"
	c1, c2 := cred(1, 1, 1), cred(1, 1, 2)
	stored := map[int]bool{} // segments are written once
	seg := func(c string, s int) {
		if !stored[s] {
			stored[s] = true
			e.mustPut(fmt.Sprintf("/hls/s/1/v0/%d.ts", s), c, fmt.Sprintf("segment %d", s))
		}
	}
	// Run 1 starts at 100 with discont_start, as ffmpeg's -hls_flags discont_start does.
	for s := 100; s <= 103; s++ {
		seg(c1, s)
	}
	steps := []struct {
		cred        string
		first, last int
		disc        []int
		want        int64
	}{
		{c1, 100, 101, []int{100}, 0},
		{c1, 100, 102, []int{100}, 0},
		{c1, 101, 103, nil, 1}, // 100's discontinuity left the window
		// Run 2 (a failover) starts at 500, its first segment marked; its
		// first playlist lists none of run 1's segments (ffmpeg does not
		// know them), so they all left at once, unmarked.
		{c2, 500, 500, []int{500}, 1},
		{c2, 500, 501, []int{500}, 1},
		{c2, 501, 502, nil, 2},
	}
	for i, s := range steps {
		for n := s.first; n <= s.last; n++ {
			if n >= 500 {
				seg(s.cred, n)
			}
		}
		body := discPlaylist(s.first, s.last, s.disc...)
		if i == 4 {
			// The writer's own value is not trusted: a new runner knows
			// nothing of its predecessor's discontinuities.
			body = strings.Replace(body, "#EXT-X-MEDIA-SEQUENCE:500\n", "#EXT-X-MEDIA-SEQUENCE:500\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n", 1)
		}
		e.mustPut(pl, s.cred, body)
		if got := e.discSeq(pl); got != s.want {
			t.Fatalf("step %d (%d..%d): EXT-X-DISCONTINUITY-SEQUENCE %d, want %d", i, s.first, s.last, got, s.want)
		}
		if i == 2 { // an origin restart between two playlists keeps the count
			e.stop()
			e = start(t, dir, Params{})
		}
	}
	// After another origin restart, run 3's first playlist has slid past
	// everything stored: nothing marked left with it (500 already had),
	// so the count stays; 900's mark leaving adds one.
	e.stop()
	e = start(t, dir, Params{})
	for n := 900; n <= 901; n++ {
		seg(cred(1, 1, 3), n)
	}
	e.mustPut(pl, cred(1, 1, 3), discPlaylist(900, 901, 900))
	if got := e.discSeq(pl); got != 2 {
		t.Fatalf("run 3: EXT-X-DISCONTINUITY-SEQUENCE %d, want 2 (nothing marked left the window)", got)
	}
	e.mustPut(pl, cred(1, 1, 3), discPlaylist(901, 901))
	if got := e.discSeq(pl); got != 3 {
		t.Fatalf("run 3 after 900 left: EXT-X-DISCONTINUITY-SEQUENCE %d, want 3", got)
	}
}

// TestMediaSequenceRefusals: a media playlist whose EXT-X-MEDIA-SEQUENCE
// is lower than the stored one, or that lists a published sequence number
// under another URI, is refused with 409 and the stored one stays.
func TestMediaSequenceRefusals(t *testing.T) {
	e := start(t, "", Params{})
	c := cred(1, 1, 1)
	const pl = "/hls/s/1/v0/index.m3u8"
	for _, s := range []string{"10.ts", "11.ts", "12.ts", "x11.ts"} {
		e.mustPut("/hls/s/1/v0/"+s, c, s)
	}
	e.mustPut(pl, c, discPlaylist(11, 12))
	stored := func() string { _, _, b := e.do(http.MethodGet, pl, token, nil); return b }
	want := stored()
	for _, tc := range []struct {
		name, body, msg string
	}{
		{"lower media sequence", discPlaylist(10, 12), "EXT-X-MEDIA-SEQUENCE 10 is lower than the 11 already published"},
		{"sequence renamed", strings.Replace(discPlaylist(11, 12), "\n11.ts", "\nx11.ts", 1), `media sequence number 11 is already published as \"s/1/v0/11.ts\"`},
	} {
		st, b := e.put(pl, c, tc.body)
		if st != http.StatusConflict || !strings.Contains(b, tc.msg) || !strings.Contains(b, `"media_sequence"`) {
			t.Errorf("%s: PUT = %d %s, want 409 media_sequence with %q", tc.name, st, b, tc.msg)
		}
		if got := stored(); got != want {
			t.Errorf("%s: the refused playlist became visible:\n%s", tc.name, got)
		}
	}
	// The same sequence number under an equivalent URI, the same window
	// again, and a window moving on are accepted.
	e.mustPut(pl, c, strings.Replace(discPlaylist(11, 12), "\n11.ts", "\n/hls/s/1/v0/11.ts", 1))
	e.mustPut(pl, c, discPlaylist(11, 12))
	e.mustPut(pl, c, discPlaylist(12, 12))
	// Another rendition has its own sequence.
	e.mustPut("/hls/s/1/v1/10.ts", c, "v1")
	e.mustPut("/hls/s/1/v1/index.m3u8", c, discPlaylist(10, 10))
	_, _, m := e.do(http.MethodGet, "/metrics", "", nil)
	if !strings.Contains(m, `portier_hls_origin_uploads_total{kind="playlist",result="sequence"} 2`) {
		t.Errorf("sequence refusals not counted:\n%s", m)
	}
}

// TestTargetDurationPinned: a rendition's EXT-X-TARGETDURATION never
// decreases (RFC 8216 6.2.1), across a runner restart whose first
// playlists have only short segments, and across an origin restart (the
// pinned value is read back from the stored playlist); it rises when a
// segment needs it.
func TestTargetDurationPinned(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Params{})
	const pl = "/hls/s/1/v0/index.m3u8"
	playlist := func(target int, first int, durs ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", target, first)
		for i, d := range durs {
			fmt.Fprintf(&b, "#EXTINF:%s,\n%d.ts\n", d, first+i)
		}
		return b.String()
	}
	target := func() string {
		t.Helper()
		st, _, b := e.do(http.MethodGet, pl, token, nil)
		if st != 200 {
			t.Fatalf("GET %s = %d", pl, st)
		}
		if n := strings.Count(b, "#EXT-X-TARGETDURATION:"); n != 1 {
			t.Fatalf("%d EXT-X-TARGETDURATION tags:\n%s", n, b)
		}
		_, rest, _ := strings.Cut(b, "#EXT-X-TARGETDURATION:")
		v, _, _ := strings.Cut(rest, "\n")
		return v
	}
	steps := []struct {
		what          string
		run           int64 // the runner's epoch
		written       int   // the writer's EXT-X-TARGETDURATION
		first         int
		durs          []string
		restartOrigin bool
		want          string
	}{
		// A copy rendition: 1 s asked for, 2 s key frame intervals.
		{"first playlist", 1, 2, 10, []string{"2.000", "1.960"}, false, "2"},
		// The runner restarts; its first segment is short, and so is its target.
		{"after a runner restart", 2, 1, 50, []string{"0.960"}, false, "2"},
		{"after an origin restart (read back)", 2, 1, 50, []string{"0.960", "1.000"}, true, "2"},
		// A longer segment raises it; it stays there.
		{"after a 2.6 s segment", 3, 3, 90, []string{"2.600"}, false, "3"},
		{"after short segments again", 3, 1, 91, []string{"1.000"}, false, "3"},
	}
	stored := map[int]bool{} // segments are written once
	for _, s := range steps {
		if s.restartOrigin {
			e.stop()
			e = start(t, dir, Params{})
		}
		c := cred(1, 1, s.run)
		for i := range s.durs {
			if n := s.first + i; !stored[n] {
				stored[n] = true
				e.mustPut(fmt.Sprintf("/hls/s/1/v0/%d.ts", n), c, "x")
			}
		}
		e.mustPut(pl, c, playlist(s.written, s.first, s.durs...))
		if got := target(); got != s.want {
			t.Fatalf("%s: EXT-X-TARGETDURATION %s, want %s", s.what, got, s.want)
		}
	}
}

func TestWithTargetDuration(t *testing.T) {
	in := "#EXTM3U\r\n#EXT-X-TARGETDURATION:1\r\n#EXTINF:1.0,\r\na.ts\r\n"
	want := "#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXTINF:1.0,\r\na.ts\r\n"
	if got := string(withTargetDuration([]byte(in), 3500*time.Millisecond)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := string(withTargetDuration([]byte("#EXTM3U\n"), time.Second)); got != "#EXTM3U\n" {
		t.Fatalf("a playlist with no tag changed: %q", got)
	}
}
