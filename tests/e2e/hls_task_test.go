package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
)

const hlsE2EToken = "e2e-hls-cluster-token-0123456789abcdef"

// bearerFetch is an hlscheck.Fetch that reads with a bearer token.
func bearerFetch(token string) hlscheck.Fetch {
	return func(url string) ([]byte, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return b, err
	}
}

// hlsRunTask is an HLS task config in `portier run` with ffmpeg publishing
// and the task running.
type hlsRunTask struct {
	a      *allInOne
	st     apiStream
	master string
	fetch  hlscheck.Fetch
}

func startHLSRunTask(t *testing.T, ctx context.Context) *hlsRunTask {
	t.Helper()
	h := startHLSRunTaskPublishing(t, ctx, peers.PublishOpts{})
	testutil.Eventually(t, 30*time.Second, "hls task running", func() bool {
		ts := h.a.tasks(t, h.st.ID)
		return len(ts) == 1 && ts[0].State == "running"
	})
	return h
}

// startHLSRunTaskPublishing is startHLSRunTask with ffmpeg publishing with
// opts, without waiting for the task.
func startHLSRunTaskPublishing(t *testing.T, ctx context.Context, opts peers.PublishOpts) *hlsRunTask {
	t.Helper()
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	a := startAllInOne(t, "--cluster-token", hlsE2EToken)
	h := &hlsRunTask{a: a, fetch: bearerFetch(hlsE2EToken)}
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "hls1"}, &h.st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", h.st.ID),
		map[string]any{"type": "hls", "name": "ladder", "segment_seconds": 1, "enabled": true,
			"renditions": []map[string]any{
				{"preset": "360p"},
				{"name": "small", "width": 320, "height": 180, "video_bitrate_kbps": 300},
				{"preset": "audio"},
			}}, &cfg); code != http.StatusCreated {
		t.Fatalf("create hls config: HTTP %d %v", code, cfg)
	}
	peers.Publish(t, ctx, h.st.Ingest.RTMPURL, opts)
	h.master = fmt.Sprintf("http://%s/hls/s/%d/master.m3u8", a.http, h.st.ID)
	return h
}

// taskInfo is the task of the stream with its epoch.
func (h *hlsRunTask) task(t *testing.T) (id, epoch int64, state string) {
	t.Helper()
	var out struct {
		Items []struct {
			ID    int64  `json:"id"`
			Epoch int64  `json:"epoch"`
			State string `json:"state"`
		} `json:"items"`
	}
	if code := h.a.api(t, "GET", fmt.Sprintf("/api/v1/tasks?stream=%d", h.st.ID), nil, &out); code != 200 || len(out.Items) != 1 {
		t.Fatalf("GET tasks: HTTP %d %+v", code, out)
	}
	return out.Items[0].ID, out.Items[0].Epoch, out.Items[0].State
}

// pollFor polls the master and its media playlists with c for d.
func (h *hlsRunTask) pollFor(t *testing.T, c *hlscheck.Checker, d time.Duration, until func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	ok := 0
	for time.Now().Before(deadline) {
		if _, err := c.Poll(h.fetch, h.master); err != nil {
			lastErr = err
		} else {
			ok++
		}
		if until != nil && until() {
			return
		}
		time.Sleep(300 * time.Millisecond) // poll interval, bounded by the deadline
	}
	if until != nil {
		t.Fatalf("condition not met after polling %v (%d good polls, last error %v)", d, ok, lastErr)
	}
	if ok == 0 {
		t.Fatalf("no successful poll of %s in %v: %v", h.master, d, lastErr)
	}
}

func lastSeq(vs []hlscheck.Media) int64 {
	m := vs[len(vs)-1]
	if len(m.Segments) == 0 {
		return m.MediaSequence - 1
	}
	return m.Segments[len(m.Segments)-1].Seq
}

// TestRunHLSTask is the HLS task end to end in `portier run`: an HLS
// ladder (two encoded video rungs and audio only, 1 s segments) on a
// stream made through the API; real ffmpeg publishes; the embedded
// concierge's ffmpeg PUTs the ladder into the embedded origin; the
// playlists, read through the origin with the cluster token, keep every
// promise hlscheck checks and advance; real ffprobe plays every
// rendition (h264 / aac). A restart through the API continues the media
// sequence upward with a discontinuity, and EXT-X-DISCONTINUITY-SEQUENCE
// counts the discontinuities as they leave the window.
func TestRunHLSTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	t0 := time.Now()
	h := startHLSRunTask(t, ctx)
	t.Logf("publish to hls task running: %v", time.Since(t0).Round(time.Millisecond))

	// What the origin adds is checked too: EXT-X-DISCONTINUITY-SEQUENCE
	// across the restart below, and the master's measured attributes.
	c := hlscheck.NewChecker().OriginChecks()
	// Wait until the master and every media playlist can be read.
	testutil.Eventually(t, 30*time.Second, "master and media playlists readable", func() bool {
		vs, err := c.Poll(h.fetch, h.master)
		return err == nil && len(vs) == 3
	})
	t.Logf("task running to playlists readable: %v", time.Since(t0).Round(time.Millisecond))
	h.pollFor(t, c, 8*time.Second, nil)
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems:\n%s", strings.Join(p, "\n"))
	}
	urls := c.URLs()
	if len(urls) != 3 {
		t.Fatalf("media playlists seen: %v", urls)
	}
	before := map[string]int64{}
	for _, u := range urls {
		vs := c.Versions(u)
		first, last := vs[0], vs[len(vs)-1]
		if len(last.Segments) == 0 || lastSeq(vs) <= lastSeq([]hlscheck.Media{first}) {
			t.Fatalf("%s did not advance over %d versions: first %+v last %+v", u, len(vs), first, last)
		}
		before[u] = lastSeq(vs)
	}

	// ffprobe plays every rendition's media playlist through the origin.
	probeRenditions(t, ctx, hlsE2EToken, urls)

	// Restart through the API: the next run's sequence continues upward
	// with a discontinuity.
	id, epoch, _ := h.task(t)
	if code := h.a.api(t, "POST", fmt.Sprintf("/api/v1/tasks/%d/restart", id), nil, nil); code != 200 {
		t.Fatalf("restart task: HTTP %d", code)
	}
	tr := time.Now()
	testutil.Eventually(t, 30*time.Second, "task running with the next epoch", func() bool {
		_, e, s := h.task(t)
		return e > epoch && s == "running"
	})
	discont := func() bool {
		for _, u := range urls {
			vs := c.Versions(u)
			m := vs[len(vs)-1]
			found := false
			for _, s := range m.Segments {
				if s.Discontinuity && s.Seq > before[u] {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	h.pollFor(t, c, 40*time.Second, discont)
	t.Logf("restart to discontinuity in every rendition: %v", time.Since(tr).Round(time.Millisecond))
	h.pollFor(t, c, 3*time.Second, nil)
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems after the restart:\n%s", strings.Join(p, "\n"))
	}
	for _, u := range urls {
		vs := c.Versions(u)
		var firstAfter int64 = -1
		for _, m := range vs {
			for _, s := range m.Segments {
				if s.Discontinuity && s.Seq > before[u] && firstAfter < 0 {
					firstAfter = s.Seq
				}
			}
		}
		if firstAfter <= before[u] {
			t.Fatalf("%s: first sequence after the restart %d, last before %d", u, firstAfter, before[u])
		}
		t.Logf("%s: last seq before restart %d, first after %d", u[strings.Index(u, "/hls/"):], before[u], firstAfter)
	}
	// Once the restart's discontinuity has left the window (6 segments of
	// 1 s), the origin's EXT-X-DISCONTINUITY-SEQUENCE counts it and the
	// first run's discont_start: 2, checked version by version by c.
	h.pollFor(t, c, 30*time.Second, func() bool {
		for _, u := range urls {
			vs := c.Versions(u)
			if m := vs[len(vs)-1]; m.DiscontinuitySequence < 2 {
				return false
			}
		}
		return true
	})
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems after the discontinuities left the window:\n%s", strings.Join(p, "\n"))
	}
	mb, err := h.fetch(h.master)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("served master playlist:\n%s", mb)
}

// TestHLSStaleRunnerRefused: after the task's runner of a newer epoch has
// written to the embedded origin of `portier run`, an upload with the
// credential of an older epoch of the same task is refused with 409, and
// one with the current epoch's credential is accepted.
func TestHLSStaleRunnerRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := startHLSRunTask(t, ctx)
	c := hlscheck.NewChecker()
	testutil.Eventually(t, 30*time.Second, "master and media playlists readable", func() bool {
		vs, err := c.Poll(h.fetch, h.master)
		return err == nil && len(vs) == 3
	})
	before := map[string]int64{}
	for _, u := range c.URLs() {
		before[u] = lastSeq(c.Versions(u))
	}
	id, epoch, _ := h.task(t)
	if code := h.a.api(t, "POST", fmt.Sprintf("/api/v1/tasks/%d/restart", id), nil, nil); code != 200 {
		t.Fatalf("restart task: HTTP %d", code)
	}
	var newEpoch int64
	testutil.Eventually(t, 30*time.Second, "task running with the next epoch", func() bool {
		_, e, s := h.task(t)
		newEpoch = e
		return e > epoch && s == "running"
	})
	// Wait until the new runner has written: a discontinuity after the
	// last segment seen before the restart.
	testutil.Eventually(t, 30*time.Second, "the new runner wrote", func() bool {
		_, _ = c.Poll(h.fetch, h.master)
		for _, u := range c.URLs() {
			vs := c.Versions(u)
			for _, s := range vs[len(vs)-1].Segments {
				if s.Discontinuity && s.Seq > before[u] {
					return true
				}
			}
		}
		return false
	})
	put := func(epoch int64, path, body string) int {
		cred := hlscred.Sign(hlsE2EToken, hlscred.Cred{StreamID: int64(h.st.ID), TaskID: id, Epoch: epoch})
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/hls/s/%d/%s", h.a.http, h.st.ID, path), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	seg := strings.Repeat("\x47", 188*4)
	if code := put(epoch, "stale/1.ts", seg); code != http.StatusConflict {
		t.Fatalf("PUT with the old epoch %d's credential: HTTP %d, want 409", epoch, code)
	}
	if code := put(epoch, "master.m3u8", "#EXTM3U\n"); code != http.StatusConflict {
		t.Fatalf("PUT master with the old epoch %d's credential: HTTP %d, want 409", epoch, code)
	}
	if code := put(newEpoch, "fresh/1.ts", seg); code/100 != 2 {
		t.Fatalf("PUT with the current epoch %d's credential: HTTP %d, want 2xx", newEpoch, code)
	}

	// A real ffmpeg as the stale runner: the old epoch's credential, the
	// same rendition path, low sequence numbers. Every upload is fenced
	// off: the live playlist keeps the current runner's segments.
	stale := hlscred.Sign(hlsE2EToken, hlscred.Cred{StreamID: int64(h.st.ID), TaskID: id, Epoch: epoch})
	base := fmt.Sprintf("http://%s/hls/s/%d/360p/", h.a.http, h.st.ID)
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	ff := exec.CommandContext(fctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "4",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "4", "-start_number", "1",
		"-method", "PUT", "-http_persistent", "1", "-headers", "Authorization: Bearer "+stale,
		"-hls_segment_filename", base+"%d.ts", base+"index.m3u8")
	out, ffErr := ff.CombinedOutput()
	t.Logf("stale ffmpeg: %v; %s", ffErr, tail(string(out), 600))

	// The real runner is still accepted after the refusals: its playlists
	// advance, with no segment of the stale writer.
	c2 := hlscheck.NewChecker()
	h.pollFor(t, c2, 4*time.Second, nil)
	if p := append(c.Problems(), c2.Problems()...); len(p) > 0 {
		t.Fatalf("hlscheck problems:\n%s", strings.Join(p, "\n"))
	}
	for _, u := range c2.URLs() {
		vs := c2.Versions(u)
		for _, m := range vs {
			for _, s := range m.Segments {
				if s.Seq <= before[u] && s.Seq < 1000 {
					t.Fatalf("%s lists a stale segment %d (%s)", u, s.Seq, s.URI)
				}
			}
		}
		if lastSeq(vs) <= before[u] {
			t.Fatalf("%s did not advance after the stale writer: %d <= %d", u, lastSeq(vs), before[u])
		}
	}
	m := metricsText(t, h.a.http)
	if !strings.Contains(m, `portier_hls_origin_uploads_total{kind="segment",result="fenced"}`) ||
		!strings.Contains(m, `portier_hls_origin_uploads_total{kind="playlist",result="fenced"}`) {
		t.Fatalf("fenced uploads not counted:\n%s", grepLines(m, "uploads_total"))
	}
	t.Logf("origin uploads:\n%s", grepLines(m, "uploads_total"))
}

// TestRunHLSTaskVideoOnly: real ffmpeg publishes a video-only lavfi source
// to `portier run`, whose stream has the HLS ladder of startHLSRunTask
// (360p, small, audio). Once the relay has reported the stream's tracks,
// the task maps video only: the origin serves the two video variants, with
// an avc1 CODECS and no audio, which keep every promise hlscheck checks
// and play in ffprobe as h264 alone; there is no audio variant.
func TestRunHLSTaskVideoOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	t0 := time.Now()
	h := startHLSRunTaskPublishing(t, ctx, peers.PublishOpts{NoAudio: true})
	c := hlscheck.NewChecker().OriginChecks()
	var vs []hlscheck.Variant
	testutil.Eventually(t, 60*time.Second, "video-only master and media playlists readable", func() bool {
		var err error
		vs, err = c.Poll(h.fetch, h.master)
		return err == nil && len(vs) == 2
	})
	t.Logf("publish to video-only playlists readable: %v", time.Since(t0).Round(time.Millisecond))
	h.pollFor(t, c, 5*time.Second, nil)
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems:\n%s", strings.Join(p, "\n"))
	}
	mb, err := h.fetch(h.master)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("served master playlist:\n%s", mb)
	vs, err = hlscheck.ParseMaster(mb)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.URI == "audio/index.m3u8" {
			t.Errorf("an audio variant for a video-only source: %v", v.Attrs)
		}
		if cs := v.Attrs["CODECS"]; !strings.HasPrefix(cs, "avc1.") || strings.Contains(cs, "mp4a") {
			t.Errorf("variant %s: CODECS %q, want avc1 alone", v.URI, cs)
		}
	}
	for _, u := range c.URLs() {
		vs := c.Versions(u)
		if len(vs[len(vs)-1].Segments) == 0 {
			t.Fatalf("%s lists no segment", u)
		}
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-headers", "Authorization: Bearer "+hlsE2EToken+"\r\n",
			"-show_streams", "-of", "json", u).Output()
		pcancel()
		var probe peers.ProbeResult
		if err != nil || json.Unmarshal(out, &probe) != nil {
			t.Fatalf("ffprobe %s: %v %s", u, err, out)
		}
		if codecs := probe.Codecs(); !probe.HasCodec("h264") || probe.HasCodec("aac") {
			t.Fatalf("ffprobe %s: codecs %v, want h264 alone", u, codecs)
		}
		t.Logf("ffprobe %s: %v", u[strings.Index(u, "/hls/"):], probe.Codecs())
	}
}
