package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/tests/peers"
)

type apiStreamStats struct {
	Live  bool `json:"live"`
	Stats *struct {
		VideoCodec    string  `json:"video_codec"`
		Width         int     `json:"width"`
		Height        int     `json:"height"`
		FPS           float64 `json:"fps"`
		AudioCodec    string  `json:"audio_codec"`
		SampleRate    int     `json:"sample_rate"`
		Channels      int     `json:"channels"`
		Bitrate       int64   `json:"bitrate"`
		Viewers       int     `json:"viewers"`
		UptimeSeconds int64   `json:"uptime_seconds"`
	} `json:"stats"`
}

var csrfInputRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// signIn signs in to the web UI of a through the login form and returns a
// client carrying the session cookie (redirects not followed).
func (a *allInOne) signIn(t *testing.T, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get("http://" + a.http + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfInputRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("login page has no CSRF field: %d", res.StatusCode)
	}
	res, err = c.PostForm("http://"+a.http+"/login", url.Values{"_csrf": {string(m[1])}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: status %d", user, res.StatusCode)
	}
	return c
}

// TestRunStreamStatistics: ffmpeg publishes 640x360 H.264+AAC to `portier
// run`, two ffmpeg players play it; the API shows the codecs, resolution,
// bitrate and at least 2 viewers from the relay's heartbeats; an edge relay
// with three players adds 3 viewers (its upstream pull is not one), a
// record task adds none (it is the system's own player); the UI serves a
// JPEG thumbnail of the stream.
func TestRunStreamStatistics(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t, "--cluster-token", relayClusterToken) // the edge below joins it
	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "statcam"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{Size: "640x360", VideoBitrate: 800_000})
	testutil.Eventually(t, 15*time.Second, "stream live", func() bool { return a.live(t, st.ID) })

	get := func() apiStreamStats {
		var v apiStreamStats
		if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d", st.ID), nil, &v); code != 200 {
			t.Fatalf("GET stream: HTTP %d", code)
		}
		return v
	}
	// Before anyone plays: codecs from the origin's heartbeat, no viewers.
	testutil.Eventually(t, 10*time.Second, "codec statistics in the API", func() bool {
		v := get()
		return v.Stats != nil && v.Stats.VideoCodec == "h264" && v.Stats.Bitrate > 0
	})
	if v := get(); v.Stats.Viewers != 0 {
		t.Errorf("viewers before any player = %d, want 0", v.Stats.Viewers)
	}

	// Two players for up to 40 s (they stop when the test ends).
	pctx, stopPlayers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopPlayers(); wg.Wait() }()
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = peers.PlayFrames(pctx, "rtmp://"+a.rtmp+"/live/statcam", 40*time.Second)
		}()
	}
	var last apiStreamStats
	testutil.Eventually(t, 15*time.Second, "2 viewers in the API", func() bool {
		last = get()
		return last.Stats != nil && last.Stats.Viewers >= 2
	})
	s := last.Stats
	if s.VideoCodec != "h264" || s.Width != 640 || s.Height != 360 || s.AudioCodec != "aac" ||
		s.SampleRate != 44100 || s.Channels != 2 || s.Bitrate <= 0 || s.UptimeSeconds < 0 {
		t.Fatalf("stats = %+v, want h264 640x360, aac 44100 Hz 2ch, bitrate > 0", *s)
	}
	if s.FPS < 20 || s.FPS > 30 {
		t.Errorf("fps = %v, want about 25", s.FPS)
	}
	t.Logf("stats: %+v", *s)

	// An edge relay pulls the stream (one player at the origin) for three
	// players of its own: 2 + 3 viewers, the edge's pull not counted.
	edge := startRelayProc(t, "stats-edge", "edge", "http://"+a.http)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = peers.PlayFrames(pctx, "rtmp://"+edge.rtmpAddr+"/live/statcam", 40*time.Second)
		}()
	}
	testutil.Eventually(t, 20*time.Second, "5 viewers with the edge's players", func() bool {
		last = get()
		return last.Stats != nil && last.Stats.Viewers == 5
	})

	// A record task pulls the stream from the relay: a player of the
	// relay (internal_players) but not a viewer.
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "record", "name": "archive", "segment_seconds": 2, "format": "ts", "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create record config: HTTP %d %v", code, cfg)
	}
	testutil.Eventually(t, 30*time.Second, "record task running", func() bool {
		ts := a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].State == "running"
	})
	var relayStreams struct {
		Streams []struct {
			Path     string `json:"path"`
			Players  int    `json:"players"`
			Internal int    `json:"internal_players"`
		} `json:"streams"`
	}
	testutil.Eventually(t, 10*time.Second, "the task counted as the relay's internal player", func() bool {
		if code := a.api(t, "GET", "/relay/api/v1/streams", nil, &relayStreams); code != 200 {
			return false
		}
		for _, it := range relayStreams.Streams {
			if it.Path == "live/statcam" {
				return it.Internal == 1 && it.Players == 4 // 2 players, the edge's pull, the task
			}
		}
		return false
	})
	// Over the next heartbeats (every second) the count stays at 5.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		if v := get(); v.Stats == nil || v.Stats.Viewers != 5 {
			t.Fatalf("viewers with a record task running = %+v, want 5 (the task is not a viewer)", v.Stats)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}

	// The UI: a JPEG thumbnail for the signed-in admin, and the detail
	// page shows the figures and the thumbnail.
	c := a.signIn(t, "admin", "e2e-admin-password")
	start := time.Now()
	res, err := c.Get(fmt.Sprintf("http://%s/streams/%d/thumbnail.jpg", a.http, st.ID))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || len(img) < 100 || img[0] != 0xFF || img[1] != 0xD8 {
		t.Fatalf("thumbnail: %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(img))
	}
	t.Logf("thumbnail: %d bytes in %s", len(img), time.Since(start).Round(time.Millisecond))
	res, err = c.Get(fmt.Sprintf("http://%s/streams/%d", a.http, st.ID))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"H264 640x360", "AAC 44100 Hz 2ch", `id="thumbnail-img"`, fmt.Sprintf("/streams/%d/thumbnail.jpg?t=", st.ID)} {
		if !strings.Contains(string(page), want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	// Signed out: sent to the sign-in page, no image.
	anon := &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = anon.Get(fmt.Sprintf("http://%s/streams/%d/thumbnail.jpg", a.http, st.ID))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("thumbnail without a session: %d %q, want a redirect to /login", res.StatusCode, res.Header.Get("Location"))
	}
}
