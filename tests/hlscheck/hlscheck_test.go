package hlscheck

import (
	"fmt"
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
