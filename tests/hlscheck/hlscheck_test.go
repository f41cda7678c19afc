package hlscheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const pl = `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:%SEQ%
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:2.020000,
#EXT-X-PROGRAM-DATE-TIME:2026-12-02T15:53:47.148+0000
a.ts
#EXT-X-DISCONTINUITY
#EXTINF:%DUR%,
b.ts
`

func media(seq, dur string) []byte {
	return []byte(strings.NewReplacer("%SEQ%", seq, "%DUR%", dur).Replace(pl))
}

// TestCheckerFindsBrokenPromises: the checker itself must catch what the
// ffmpeg test relies on it to catch.
func TestCheckerFindsBrokenPromises(t *testing.T) {
	m, err := ParseMedia(media("10", "1.9"))
	if err != nil || m.MediaSequence != 10 || len(m.Segments) != 2 || m.Segments[1].Seq != 11 ||
		!m.Segments[1].Discontinuity || m.Segments[0].ProgramDateTime.IsZero() || !m.Segments[1].ProgramDateTime.IsZero() {
		t.Fatalf("%+v %v", m, err)
	}
	for _, tc := range []struct {
		name     string
		versions [][]byte
		want     string
	}{
		{"fine", [][]byte{media("10", "1.9"), media("10", "2.4")}, ""},
		{"long segment", [][]byte{media("10", "2.6")}, "EXTINF 2.600 > TARGETDURATION 2"},
		{"sequence down", [][]byte{media("10", "2"), media("9", "2")}, "went down from 10 to 9"},
		{"sequence renamed", [][]byte{media("10", "2"), []byte(strings.Replace(string(media("10", "2")), "b.ts", "c.ts", 1))}, "sequence number 11 was b.ts, now c.ts"},
		{"target changed", [][]byte{media("10", "2"), []byte(strings.Replace(string(media("10", "2")), "TARGETDURATION:2", "TARGETDURATION:4", 1))}, "EXT-X-TARGETDURATION changed from 2 to 4"},
		{"not a playlist", [][]byte{[]byte("<html>")}, "#EXTM3U"},
	} {
		c := NewChecker()
		for _, v := range tc.versions {
			c.Media("/x/index.m3u8", v)
		}
		p := strings.Join(c.Problems(), "\n")
		if (tc.want == "") != (p == "") || !strings.Contains(p, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, p, tc.want)
		}
	}
	vs, err := ParseMaster([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=985600,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\n360p/index.m3u8\n"))
	if err != nil || len(vs) != 1 || vs[0].Attrs["CODECS"] != "avc1.64001e,mp4a.40.2" || vs[0].Attrs["RESOLUTION"] != "640x360" || vs[0].URI != "360p/index.m3u8" {
		t.Fatalf("%+v %v", vs, err)
	}
}

// TestCheckerProgramDateTimeAndSegmentBytes: a required program date time
// missing on a segment, and a segment URL serving other bytes on a later
// read, are problems; ReadSegments reads what the latest playlists list.
func TestCheckerProgramDateTimeAndSegmentBytes(t *testing.T) {
	c := NewChecker().RequireProgramDateTime()
	c.Media("http://o/hls/s/1/v0/index.m3u8", media("10", "2"))
	c.Media("http://o/hls/s/1/v0/index.m3u8", media("10", "2"))
	if p := c.Problems(); len(p) != 1 || !strings.Contains(p[0], "segment 11 (b.ts) has no EXT-X-PROGRAM-DATE-TIME") {
		t.Fatalf("problems %q, want one about b.ts's program date time", p)
	}
	plain := NewChecker()
	plain.Media("/x/index.m3u8", media("10", "2"))
	if p := plain.Problems(); len(p) != 0 {
		t.Fatalf("program date time required by default: %q", p)
	}

	files := map[string]string{"http://o/hls/s/1/v0/a.ts": "A", "http://o/hls/s/1/v0/b.ts": "B"}
	var reads []string
	fetch := func(u string) ([]byte, error) {
		reads = append(reads, u)
		b, ok := files[u]
		if !ok {
			return nil, fmt.Errorf("404 %s", u)
		}
		return []byte(b), nil
	}
	c = NewChecker()
	c.Media("http://o/hls/s/1/v0/index.m3u8", media("10", "2"))
	if n, err := c.ReadSegments(fetch); n != 2 || err != nil || len(reads) != 2 {
		t.Fatalf("ReadSegments = %d, %v after reads %q", n, err, reads)
	}
	if n, err := c.ReadSegments(fetch); n != 2 || err != nil || len(c.Problems()) != 0 {
		t.Fatalf("second ReadSegments = %d, %v, problems %q", n, err, c.Problems())
	}
	files["http://o/hls/s/1/v0/b.ts"] = "B again"
	delete(files, "http://o/hls/s/1/v0/a.ts")
	n, err := c.ReadSegments(fetch)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "a.ts") {
		t.Fatalf("ReadSegments with a.ts gone = %d, %v", n, err)
	}
	if p := c.Problems(); len(p) != 1 || !strings.Contains(p[0], "b.ts: served 7 bytes") {
		t.Fatalf("problems %q, want b.ts serving other bytes", p)
	}
}

// discPL is a media playlist of 2 s segments SEQ.ts from first to last with
// EXT-X-DISCONTINUITY before the ones in disc; ds < 0 leaves
// EXT-X-DISCONTINUITY-SEQUENCE out.
func discPL(first, last int, ds int, disc ...int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	if ds >= 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", ds)
	}
	for s := first; s <= last; s++ {
		if slices.Contains(disc, s) {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		fmt.Fprintf(&b, "#EXTINF:2.0,\n%d.ts\n", s)
	}
	return []byte(b.String())
}

// TestCheckerDiscontinuitySequence: with OriginChecks, a discontinuity
// that leaves the window must raise EXT-X-DISCONTINUITY-SEQUENCE by one
// (what ffmpeg 5.1 alone never writes), never lower it.
func TestCheckerDiscontinuitySequence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		versions [][]byte
		want     string
	}{
		{"counted", [][]byte{discPL(10, 12, 0, 10), discPL(11, 13, 1), discPL(500, 500, 1, 500), discPL(501, 501, 2)}, ""},
		{"ffmpeg 5.1 alone", [][]byte{discPL(10, 12, -1, 10), discPL(11, 13, -1)}, "EXT-X-DISCONTINUITY-SEQUENCE 0 at media sequence 11, want 1"},
		{"counted twice", [][]byte{discPL(10, 12, 0, 10), discPL(11, 13, 2)}, "EXT-X-DISCONTINUITY-SEQUENCE 2 at media sequence 11, want 1"},
		{"down", [][]byte{discPL(10, 12, 3), discPL(11, 13, 2)}, "went down from 3 to 2"},
		{"gap: at least", [][]byte{discPL(10, 12, 0, 10), discPL(20, 21, 0)}, "want at least 1"},
		{"gap: more is fine", [][]byte{discPL(10, 12, 0, 10), discPL(20, 21, 3)}, ""},
	} {
		c := NewChecker().OriginChecks()
		for _, v := range tc.versions {
			c.Media("/x/index.m3u8", v)
		}
		p := strings.Join(c.Problems(), "\n")
		if (tc.want == "") != (p == "") || !strings.Contains(p, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, p, tc.want)
		}
		c = NewChecker()
		for _, v := range tc.versions {
			c.Media("/x/index.m3u8", v)
		}
		if p := c.Problems(); len(p) > 0 {
			t.Errorf("%s without OriginChecks: %v", tc.name, p)
		}
	}
}

// TestCheckerMaster: Poll with OriginChecks finds a variant that lists
// segments but lacks a measured attribute; a variant without segments yet
// is not judged.
func TestCheckerMaster(t *testing.T) {
	media := discPL(1, 2, 0)
	for _, tc := range []struct{ name, inf, want string }{
		{"complete", `BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=25.000`, ""},
		{"audio", `BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS="mp4a.40.2"`, ""},
		{"ffmpeg copy", `BANDWIDTH=140800,RESOLUTION=640x360`, "AVERAGE-BANDWIDTH"},
		{"no codecs", `BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360`, "has no CODECS"},
		{"no frame rate", `BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,CODECS="avc1.64001e",RESOLUTION=640x360`, "FRAME-RATE"},
		{"average above", `BANDWIDTH=700000,AVERAGE-BANDWIDTH=800000,CODECS="mp4a.40.2"`, "above BANDWIDTH"},
	} {
		files := map[string][]byte{
			"/m/master.m3u8":      []byte("#EXTM3U\n#EXT-X-STREAM-INF:" + tc.inf + "\nv/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\nempty/index.m3u8\n"),
			"/m/v/index.m3u8":     media,
			"/m/empty/index.m3u8": []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"),
		}
		fetch := func(u string) ([]byte, error) { return files[u], nil }
		c := NewChecker().OriginChecks()
		if _, err := c.Poll(fetch, "/m/master.m3u8"); err != nil {
			t.Fatal(err)
		}
		p := strings.Join(c.Problems(), "\n")
		if (tc.want == "") != (p == "") || !strings.Contains(p, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, p, tc.want)
		}
	}
}
