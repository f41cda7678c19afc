package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/tests/hlscheck"
)

// hlsPlayerJS builds a player on the page it runs in: the hls.js that web/
// serves (same origin, so the UI's CSP allows it), a muted autoplaying
// <video>, and an Hls that reads the master playlist with the cluster
// token. What the player sees goes to window.__hlsPlay for the test to poll.
const hlsPlayerJS = `(() => {
  const st = window.__hlsPlay = {loaded: false, levels: [], switched: [], errors: [], log: []};
  const s = document.createElement("script");
  s.src = "/static/vendor/hls.min.js";
  s.onerror = () => st.errors.push("hls.js did not load from " + s.src);
  s.onload = () => {
    st.loaded = true;
    if (!Hls.isSupported()) { st.errors.push("Hls.isSupported() is false"); return; }
    const v = document.createElement("video");
    v.id = "hls-player"; v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 640;
    document.body.prepend(v);
    const h = new Hls({xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", "Bearer " + %q)});
    window.__hls = h;
    h.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
      st.levels = d.levels.map((l) => ({height: l.height, bitrate: l.bitrate, codecs: (l.videoCodec || "") + "," + (l.audioCodec || "")}));
      v.play().catch((err) => st.errors.push("play(): " + err));
    });
    h.on(Hls.Events.LEVEL_SWITCHED, (e, d) => st.switched.push({level: d.level, at: v.currentTime}));
    h.on(Hls.Events.ERROR, (e, d) => {
      const m = d.type + " " + d.details + (d.fatal ? " (fatal)" : "");
      (d.fatal ? st.errors : st.log).push(m);
    });
    h.loadSource(%q);
    h.attachMedia(v);
  };
  document.head.appendChild(s);
  return true;
})()`

// hlsPlayState is what the test reads of the page's player.
type hlsPlayState struct {
	Loaded bool `json:"loaded"`
	Levels []struct {
		Height  int    `json:"height"`
		Bitrate int    `json:"bitrate"`
		Codecs  string `json:"codecs"`
	} `json:"levels"`
	Switched []struct {
		Level int     `json:"level"`
		At    float64 `json:"at"`
	} `json:"switched"`
	Errors      []string `json:"errors"`
	Log         []string `json:"log"`
	CurrentTime float64  `json:"currentTime"`
	Level       int      `json:"level"`
	VideoHeight int      `json:"videoHeight"`
	Paused      bool     `json:"paused"`
	Buffered    float64  `json:"buffered"`
}

// readHLSPlay reads the player's state from the page.
func readHLSPlay(b *uiBrowser) (hlsPlayState, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
  const st = window.__hlsPlay || {}, v = document.getElementById("hls-player"), h = window.__hls;
  const b = v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
  return JSON.stringify(Object.assign({}, st, v ? {currentTime: v.currentTime, videoHeight: v.videoHeight, paused: v.paused, buffered: b} : {},
    {level: h ? h.currentLevel : -1}));
})()`))
	if err != nil {
		return hlsPlayState{}, err
	}
	var s hlsPlayState
	err = json.Unmarshal([]byte(raw), &s)
	return s, err
}

// TestHLSPlayHLSJS: Chromium plays the HLS task's ladder from the origin
// embedded in a real `portier run`, through the hls.js that web/ serves:
// the stream made through the API, real ffmpeg publishing, the embedded
// concierge's ffmpeg writing two encoded video renditions and one audio
// rendition. The master playlist is read with the cluster token (set by
// hls.js's xhrSetup); the video's currentTime advances for 20 s; a forced
// switch to the other video level arrives (LEVEL_SWITCHED), the picture
// takes that level's height and currentTime keeps advancing.
func TestHLSPlayHLSJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	t0 := time.Now()
	h := startHLSRunTask(t, ctx)
	c := hlscheck.NewChecker()
	testutil.Eventually(t, 30*time.Second, "master and media playlists readable", func() bool {
		vs, err := c.Poll(h.fetch, h.master)
		return err == nil && len(vs) == 3
	})
	t.Logf("publish to playlists readable: %v", time.Since(t0).Round(time.Millisecond))

	b := newUIBrowser(t)
	var last hlsPlayState
	b.screenshotOnFailure(t, "hls-play")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("player state: %+v; console errors %q", last, b.errors())
		}
	})
	// A page of run's own address, so hls.js loads from /static/ and reads
	// /hls/s/ same-origin (the UI's CSP allows both).
	b.do(t, "open a page on run's address", 20*time.Second,
		chromedp.Navigate("http://"+h.a.http+"/login"),
		chromedp.WaitVisible(uiCSS("#username")),
	)
	if !uiGet(t, b, "build the player", 5*time.Second, chromedp.Evaluate[bool](fmt.Sprintf(hlsPlayerJS, hlsE2EToken, h.master))) {
		t.Fatal("the player script did not run")
	}
	tPlayer := time.Now()
	poll := func(what string, d time.Duration, cond func(s hlsPlayState) bool) hlsPlayState {
		t.Helper()
		uiWaitUntil(t, d, what, func() (bool, error) {
			s, err := readHLSPlay(b)
			if err != nil {
				return false, err
			}
			last = s
			if len(s.Errors) > 0 {
				t.Fatalf("%s: player errors %q (console %q)", what, s.Errors, b.errors())
			}
			return cond(s), nil
		})
		return last
	}
	start := poll("playback starts", 30*time.Second, func(s hlsPlayState) bool { return s.CurrentTime > 0.5 && !s.Paused })
	var video []int // indexes of the levels with a picture
	for i, l := range start.Levels {
		if l.Height > 0 {
			video = append(video, i)
		}
	}
	if len(video) < 2 {
		t.Fatalf("hls.js found video levels %v in %+v, want 2", video, start.Levels)
	}
	t.Logf("playing %v after the player was built; levels %+v; on level %d, %dp", time.Since(tPlayer).Round(time.Millisecond), start.Levels, start.Level, start.VideoHeight)

	// 20 s of play: currentTime follows the wall clock (a stall of a few
	// seconds is tolerated on a shared machine, a stop is not).
	w0, c0 := time.Now(), start.CurrentTime
	for time.Since(w0) < 20*time.Second {
		last = poll("read the player", 5*time.Second, func(hlsPlayState) bool { return true })
		time.Sleep(time.Second) // sampling interval of a fixed 20 s window
	}
	played := last.CurrentTime - c0
	t.Logf("20 s window: currentTime advanced %.1f s (buffer ahead %.1f s); non-fatal hls.js errors %q",
		played, last.Buffered-last.CurrentTime, last.Log)
	if played < 15 {
		t.Fatalf("currentTime advanced %.1f s in %v, want ≥ 15 s", played, time.Since(w0).Round(time.Millisecond))
	}

	// Force the other video level.
	from := last.Level
	if from < 0 {
		from = video[0]
	}
	to := video[0]
	if to == from {
		to = video[1]
	}
	uiGet(t, b, "switch level", 5*time.Second, chromedp.Evaluate[bool](fmt.Sprintf(`(window.__hls.currentLevel = %d, true)`, to)))
	ts := time.Now()
	want := start.Levels[to].Height
	sw := poll(fmt.Sprintf("LEVEL_SWITCHED to level %d (%dp)", to, want), 30*time.Second, func(s hlsPlayState) bool {
		for _, e := range s.Switched {
			if e.Level == to {
				return s.VideoHeight == want
			}
		}
		return false
	})
	t.Logf("level %d → %d: switched and showing %dp after %v", from, to, sw.VideoHeight, time.Since(ts).Round(time.Millisecond))
	c1 := sw.CurrentTime
	after := poll("currentTime advances on the new level", 15*time.Second, func(s hlsPlayState) bool { return s.CurrentTime > c1+5 })
	if after.Level != to || after.VideoHeight != want {
		t.Fatalf("after the switch hls.js is on level %d showing %dp, want level %d at %dp", after.Level, after.VideoHeight, to, want)
	}
	t.Logf("on level %d: currentTime %.1f → %.1f", to, c1, after.CurrentTime)
	b.screenshot(t, "hls-play")
	for _, e := range b.errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Uncaught") {
			t.Errorf("browser console: %s", e)
		}
	}
}
