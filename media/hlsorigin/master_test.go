package hlsorigin

import (
	"context"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// ffmpegLadder makes a real ffmpeg 5.1 HLS output in a temp directory: an
// H.264 (Main) + AAC source from lavfi, 640x360 (cropped from 640x368 in
// the SPS) at 25 fps, written as the HLS task writes a copy rendition
// (src) and an audio rendition (audio), with ffmpeg's own master playlist.
func ffmpegLadder(t *testing.T) string {
	t.Helper()
	ffmpeg := peers.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := filepath.Join(dir, "src.ts")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-profile:v", "main", "-preset", "veryfast", "-g", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", src)
	out := filepath.Join(dir, "out")
	run("-i", src, "-map", "0:v", "-map", "0:a", "-map", "0:a", "-c", "copy",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "0", "-hls_segment_type", "mpegts",
		"-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,a:0,name:src a:1,name:audio",
		"-hls_segment_filename", filepath.Join(out, "%v", "%d.ts"), filepath.Join(out, "%v", "index.m3u8"))
	return out
}

// upload PUTs what ffmpegLadder wrote for rendition r: segments, then the
// media playlist.
func (e *env) upload(out, r, c string) {
	e.t.Helper()
	pl, err := os.ReadFile(filepath.Join(out, r, "index.m3u8"))
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := parsePlaylist(pl)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range p.Segments {
		b, err := os.ReadFile(filepath.Join(out, r, s.URI))
		if err != nil {
			e.t.Fatal(err)
		}
		e.mustPut("/hls/s/1/"+r+"/"+s.URI, c, string(b))
	}
	e.mustPut("/hls/s/1/"+r+"/index.m3u8", c, string(pl))
}

// wantRates computes AVERAGE-BANDWIDTH and a lower bound of the peak
// segment bit rate (the largest of the segments lasting 0.5 to 1.5 target
// durations) of a rendition from ffmpeg's files, independently of the
// origin's code.
func wantRates(t *testing.T, out, r string) (avg, peak float64) {
	pl, _ := os.ReadFile(filepath.Join(out, r, "index.m3u8"))
	var bits, secs float64
	var dur, target float64
	for _, line := range strings.Split(string(pl), "\n") {
		if v, ok := strings.CutPrefix(line, "#EXT-X-TARGETDURATION:"); ok {
			target, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			dur, _ = strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
			continue
		}
		if strings.HasSuffix(line, ".ts") {
			fi, err := os.Stat(filepath.Join(out, r, line))
			if err != nil {
				t.Fatal(err)
			}
			bits += float64(fi.Size() * 8)
			secs += dur
			if dur >= target/2 && dur <= target*3/2 {
				peak = math.Max(peak, float64(fi.Size()*8)/dur)
			}
		}
	}
	return bits / secs, peak
}

// TestMasterCompletion: the master playlist ffmpeg 5.1 writes for a copy
// rendition has neither CODECS nor AVERAGE-BANDWIDTH nor FRAME-RATE, and
// a BANDWIDTH of its audio alone. Served by the origin once the segments
// are stored, every variant has them, measured from ffmpeg's real
// segments; before any segment it is served as written.
func TestMasterCompletion(t *testing.T) {
	out := ffmpegLadder(t)
	master, err := os.ReadFile(filepath.Join(out, "master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ffmpeg's master:\n%s", master)
	e := start(t, "", Params{})
	c := cred(1, 1, 1)
	e.mustPut("/hls/s/1/master.m3u8", c, string(master))
	st, h, b := e.do(http.MethodGet, "/hls/s/1/master.m3u8", token, nil)
	if st != 200 || b != string(master) {
		t.Fatalf("master before any segment = %d, not as written:\n%s", st, b)
	}
	etag := h.Get("ETag")

	e.upload(out, "src", c)
	e.upload(out, "audio", c)
	st, h, b = e.do(http.MethodGet, "/hls/s/1/master.m3u8", token, nil)
	if st != 200 || h.Get("ETag") == etag || h.Get("ETag") == "" {
		t.Fatalf("completed master = %d, ETag %q (was %q)", st, h.Get("ETag"), etag)
	}
	t.Logf("served master:\n%s", b)
	variants := masterVariants(t, b)
	for r, want := range map[string]map[string]string{
		"src":   {"CODECS": `"avc1.4d401e,mp4a.40.2"`, "RESOLUTION": "640x360", "FRAME-RATE": "25.000"},
		"audio": {"CODECS": `"mp4a.40.2"`},
	} {
		a, ok := variants[r+"/index.m3u8"]
		if !ok {
			t.Fatalf("no variant %s", r)
		}
		for k, v := range want {
			if a.get(k) != strings.Trim(v, `"`) {
				t.Errorf("%s: %s = %q, want %s", r, k, a.get(k), v)
			}
		}
		if r == "audio" && (a.get("RESOLUTION") != "" || a.get("FRAME-RATE") != "") {
			t.Errorf("audio variant has RESOLUTION or FRAME-RATE: %v", a)
		}
		avg, _ := strconv.ParseFloat(a.get("AVERAGE-BANDWIDTH"), 64)
		bw, _ := strconv.ParseFloat(a.get("BANDWIDTH"), 64)
		wantAvg, wantPeak := wantRates(t, out, r)
		if math.Abs(avg-wantAvg) > 1 {
			t.Errorf("%s: AVERAGE-BANDWIDTH %v, want %.0f", r, avg, wantAvg)
		}
		if bw < wantPeak-1 || bw < avg {
			t.Errorf("%s: BANDWIDTH %v below the peak segment bit rate %.0f or the average %v", r, bw, wantPeak, avg)
		}
		t.Logf("%s: AVERAGE-BANDWIDTH %v (measured from files %.0f), BANDWIDTH %v (peak segment %.0f)", r, avg, wantAvg, bw, wantPeak)
	}
	// ffmpeg's own master declares the audio's bit rate for the copy
	// rendition: the served BANDWIDTH covers the video too.
	d, _ := strconv.Atoi(masterVariants(t, string(master))["src/index.m3u8"].get("BANDWIDTH"))
	if bw, _ := strconv.Atoi(variants["src/index.m3u8"].get("BANDWIDTH")); bw <= d {
		t.Errorf("src: served BANDWIDTH %d not above ffmpeg's declared %d", bw, d)
	}
	if st, _, _ := e.do(http.MethodGet, "/hls/s/1/master.m3u8", token, nil, "If-None-Match", h.Get("ETag")); st != http.StatusNotModified {
		t.Errorf("If-None-Match with the completed master's ETag = %d, want 304", st)
	}
}

func masterVariants(t *testing.T, b string) map[string]attrList {
	t.Helper()
	out := map[string]attrList{}
	var cur attrList
	for _, line := range strings.Split(b, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			cur = splitAttrs(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"))
		case line != "" && !strings.HasPrefix(line, "#") && cur != nil:
			out[line] = cur
			cur = nil
		}
	}
	if len(out) == 0 {
		t.Fatalf("no variants in\n%s", b)
	}
	return out
}

// TestCompleteStreamInf: declared values are kept unless the measurement
// shows them wrong; missing ones are added after them, quoting kept.
func TestCompleteStreamInf(t *testing.T) {
	vs := variantStats{peak: 900000, average: 700000, probed: true,
		info: mediaInfo{Codecs: []string{"avc1.64001f", "mp4a.40.2"}, Width: 1280, Height: 720, FPS: 29.97}}
	for _, tc := range []struct{ in, want string }{
		{`BANDWIDTH=140800,CODECS="mp4a.40.2"`, `BANDWIDTH=900000,CODECS="avc1.64001f,mp4a.40.2",AVERAGE-BANDWIDTH=700000,RESOLUTION=1280x720,FRAME-RATE=29.970`},
		{`BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"`, `BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AVERAGE-BANDWIDTH=700000,FRAME-RATE=29.970`},
	} {
		if got := completeStreamInf(tc.in, vs); got != tc.want {
			t.Errorf("completeStreamInf(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	unprobed := variantStats{peak: 900000, average: 700000}
	if got, want := completeStreamInf(`BANDWIDTH=140800,CODECS="mp4a.40.2"`, unprobed), `BANDWIDTH=900000,CODECS="mp4a.40.2",AVERAGE-BANDWIDTH=700000`; got != want {
		t.Errorf("unprobed: got %s want %s", got, want)
	}
}
