package hlsrewrite

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden: a master playlist with audio renditions, I-frame playlists
// and an origin steering tag, and an fMP4 media playlist with EXT-X-MAP,
// a discontinuity and absolute and escaping URIs, rewritten for a viewer
// with a token on pathway g0; compared with testdata/*.golden (go test
// -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	dir := &fakeDir{streams: map[string]Stream{"live/cam": {ID: 7}}}
	for i := range 3 {
		dir.edges = append(dir.edges, Edge{Name: "edge-" + string(rune('a'+i)), BaseURL: "http://edge-" + string(rune('a'+i)) + ".test:8095", CapacityMbps: 1000, LastHeartbeat: time.Unix(1_800_000_000, 0)})
	}
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	rw, err := New(Params{Directory: dir, Origin: &fakeOrigin{}, Secret: hlssign.Secret("tok"), NoProbe: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"master", "media"} {
		in, err := os.ReadFile(filepath.Join("testdata", name+".m3u8"))
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if name == "master" {
			got = rw.rewriteMaster(in, 7, viewerReq{app: "live", appSeg: "live", name: "cam"}, 0, "https://watch.example", "7.1800003600.SIG")
		} else {
			set := rw.edges.get()
			if got, err = rw.rewriteMedia(in, 7, "/hls/s/7/720p/index.m3u8", 0, set); err != nil {
				t.Fatal(err)
			}
		}
		gf := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(gf, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(gf)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s rewritten:\n%s\nwant (%s):\n%s", name, got, gf, want)
		}
	}
}

// FuzzRewriteMedia: any origin body rewrites without a panic, and every
// URI it points at an edge stays under the stream's prefix.
func FuzzRewriteMedia(f *testing.F) {
	for _, n := range []string{"media.m3u8", "master.m3u8"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("#EXTM3U\n../../../../etc/passwd\n/hls/s/8/x.ts\n#EXT-X-MAP:URI=\"../../9/init.mp4\"\n"))
	dir := &fakeDir{edges: []Edge{{Name: "e", BaseURL: "http://e.test", CapacityMbps: 1000, LastHeartbeat: time.Now().Add(time.Hour)}}}
	rw, err := New(Params{Directory: dir, Origin: &fakeOrigin{}, Secret: "s", NoProbe: true})
	if err != nil {
		f.Fatal(err)
	}
	if err := rw.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		set := rw.edges.get()
		out, err := rw.rewriteMedia(body, 7, "/hls/s/7/720p/index.m3u8", 0, set)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if i := strings.Index(line, "http://e.test"); i >= 0 {
				rest := line[i+len("http://e.test"):]
				if !strings.HasPrefix(rest, "/hls/s/7/") || strings.Contains(strings.SplitN(rest, "?", 2)[0], "..") {
					t.Fatalf("rewritten URI outside the stream: %q", line)
				}
			}
		}
		_ = rw.rewriteMaster(body, 7, viewerReq{app: "live", appSeg: "live", name: "cam"}, 0, "http://cp", "")
	})
}
