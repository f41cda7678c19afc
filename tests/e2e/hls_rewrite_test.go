package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/web"
)

// rewriteCluster is `portier run` without its embedded edge, 3 real
// `portier cdn-edge` processes, and a live stream with an HLS task whose
// viewer URL (play.hls) goes through the playlist rewriter.
type rewriteCluster struct {
	a      *allInOne
	edges  []*relayProc
	st     apiStream
	play   string // play.hls
	target float64
}

func startRewriteCluster(t *testing.T, ctx context.Context, nEdges int) *rewriteCluster {
	t.Helper()
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t, "--cluster-token", hlsE2EToken, "--no-cdn-edge")
	rc := &rewriteCluster{a: a}
	for i := range nEdges {
		rc.edges = append(rc.edges, startCDNEdgeToken(t, fmt.Sprintf("cdn-%d", i+1), "http://"+a.http, hlsE2EToken, []string{"http://" + a.http}))
	}
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "rw1"}, &rc.st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", rc.st.ID),
		map[string]any{"type": "hls", "name": "ladder", "segment_seconds": 2, "enabled": true,
			"renditions": []map[string]any{{"preset": "360p"}, {"name": "small", "width": 320, "height": 180, "video_bitrate_kbps": 300}}}, &cfg); code != http.StatusCreated {
		t.Fatalf("create hls config: HTTP %d %v", code, cfg)
	}
	peers.Publish(t, ctx, rc.st.Ingest.RTMPURL, peers.PublishOpts{})
	var got struct {
		Play struct {
			HLS string `json:"hls"`
		} `json:"play"`
		HLSPublic bool `json:"hls_public"`
	}
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d", rc.st.ID), nil, &got); code != 200 || got.HLSPublic ||
		!strings.HasPrefix(got.Play.HLS, "http://"+a.http+"/hls/live/rw1/master.m3u8?token=") {
		t.Fatalf("GET stream: HTTP %d, play.hls %q hls_public %v", code, got.Play.HLS, got.HLSPublic)
	}
	rc.play = got.Play.HLS
	segRE := regexp.MustCompile(`(?m)^http://([^/]+)/hls/s/\d+/[^/]+/[^?]+\.ts\?exp=`)
	var lastErr string
	get := func(u string) ([]byte, bool) {
		resp, err := http.Get(u)
		if err != nil {
			lastErr = err.Error()
			return nil, false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			lastErr = fmt.Sprintf("%s: %s %s", u, resp.Status, b)
			return nil, false
		}
		return b, true
	}
	ok := false
	deadline := time.Now().Add(60 * time.Second)
	for !ok && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond) // poll interval, bounded by the deadline
		master, good := get(rc.play)
		if !good {
			continue
		}
		variants := regexp.MustCompile(`(?m)^http://\S+/index\.m3u8\?\S+$`).FindAllString(string(master), -1)
		if len(variants) != 2 {
			lastErr = "master lists " + strconv.Itoa(len(variants)) + " variants:\n" + string(master)
			continue
		}
		ok = true
		for _, u := range variants {
			b, good := get(u)
			if !good || len(segRE.FindAll(b, -1)) < 3 {
				ok = false
				if good {
					lastErr = u + ":\n" + string(b)
				}
				break
			}
			if m := regexp.MustCompile(`#EXT-X-TARGETDURATION:(\d+)`).FindSubmatch(b); m != nil {
				rc.target, _ = strconv.ParseFloat(string(m[1]), 64)
			}
		}
	}
	if !ok {
		t.Fatalf("media playlists through the rewriter never listed 3 segments on edges: %s", lastErr)
	}
	return rc
}

// rewritePlayerJS builds an hls.js player that loads the viewer URL
// cross-origin (no credentials), records every stall (currentTime not
// advancing for more than 250 ms while playing) and keeps all resource
// timings for the test to read.
const rewritePlayerJS = `(() => {
  performance.setResourceTimingBufferSize(100000);
  const st = window.__hlsPlay = {loaded: false, levels: [], switched: [], errors: [], log: [], stalls: [], pathways: []};
  const s = document.createElement("script");
  s.src = "/hls.min.js";
  s.onload = () => {
    st.loaded = true;
    const v = document.createElement("video");
    v.id = "hls-player"; v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 640;
    document.body.prepend(v);
    const h = new Hls({debug: false});
    window.__hls = h;
    h.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
      st.levels = d.levels.map((l) => ({height: l.height, bitrate: l.bitrate}));
      v.play().catch((err) => st.errors.push("play(): " + err));
    });
    h.on(Hls.Events.LEVEL_SWITCHED, (e, d) => st.switched.push({level: d.level, at: v.currentTime}));
    h.on(Hls.Events.STEERING_MANIFEST_LOADED, (e, d) => {
      const p = (d.steeringManifest["PATHWAY-PRIORITY"] || [])[0];
      if (st.pathways[st.pathways.length - 1] !== p) st.pathways.push(p);
    });
    h.on(Hls.Events.ERROR, (e, d) => {
      const m = d.type + " " + d.details + (d.fatal ? " (fatal)" : "") + (d.frag ? " " + d.frag.url.split("?")[0] : "");
      (d.fatal ? st.errors : st.log).push(m);
    });
    let lastT = -1, lastChange = performance.now(), stallFrom = null;
    setInterval(() => {
      const now = performance.now();
      if (v.currentTime !== lastT) {
        if (stallFrom !== null) { st.stalls.push({at: stallFrom / 1000, ms: Math.round(now - stallFrom)}); stallFrom = null; }
        lastT = v.currentTime; lastChange = now;
      } else if (lastT > 0 && now - lastChange > 250 && stallFrom === null) {
        stallFrom = lastChange;
      }
      st.stalledNowMs = stallFrom === null ? 0 : Math.round(now - stallFrom);
    }, 50);
    h.loadSource(%q);
    h.attachMedia(v);
  };
  document.head.appendChild(s);
  return true;
})()`

type rewritePlayState struct {
	hlsPlayState
	Stalls []struct {
		At float64 `json:"at"`
		MS float64 `json:"ms"`
	} `json:"stalls"`
	StalledNowMS float64  `json:"stalledNowMs"`
	Pathways     []string `json:"pathways"`
	Now          float64  `json:"now"`
}

func readRewritePlay(b *uiBrowser) (rewritePlayState, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
  const st = window.__hlsPlay || {}, v = document.getElementById("hls-player"), h = window.__hls;
  const b = v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
  return JSON.stringify(Object.assign({}, st, v ? {currentTime: v.currentTime, videoHeight: v.videoHeight, paused: v.paused, buffered: b} : {},
    {level: h ? h.currentLevel : -1, now: performance.now() / 1000}));
})()`))
	if err != nil {
		return rewritePlayState{}, err
	}
	var s rewritePlayState
	err = json.Unmarshal([]byte(raw), &s)
	return s, err
}

// segmentRequests lists the page's segment requests (URL without query,
// start time in s of the page clock).
type segReq struct {
	URL   string  `json:"url"`
	Start float64 `json:"start"`
}

func readSegmentRequests(t *testing.T, b *uiBrowser) []segReq {
	t.Helper()
	js := uiGet(t, b, "read resource timings", 5*time.Second, chromedp.Evaluate[string](`JSON.stringify(performance.getEntriesByType("resource")
	  .filter((e) => /\.(ts|m4s|mp4)(\?|$)/.test(e.name)).map((e) => ({url: e.name.split("?")[0], start: e.startTime / 1000})))`))
	var out []segReq
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHLSRewriterPlaysThroughEdges: Chromium plays a stream's play.hls
// (a token-protected viewer URL from the API) with hls.js on a page of
// another origin, through the playlist rewriter of a real `portier run`
// and 3 real `portier cdn-edge` processes: currentTime advances for 30 s,
// a forced level switch plays, every segment request goes to an edge and
// none to the origin; then the edge serving the player is killed and the
// player keeps playing, with at most one stall of at most 2 target
// durations, moved to the new content-steering pathway.
func TestHLSRewriterPlaysThroughEdges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	rc := startRewriteCluster(t, ctx, 3)
	edgeHosts := map[string]*relayProc{}
	for _, e := range rc.edges {
		edgeHosts[e.httpAddr] = e
	}

	// The player page comes from another origin than the playlists.
	hlsJS, err := fs.ReadFile(web.Static(), "vendor/hls.min.js")
	if err != nil {
		t.Fatal(err)
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hls.min.js" {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(hlsJS)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>player</title><body></body>"))
	}))
	defer page.Close()
	pu, _ := url.Parse(page.URL)
	pu.Host = "localhost:" + pu.Port() // another host name too, not just another port
	b := newUIBrowser(t)
	var last rewritePlayState
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("player state: %+v; console %q", last, b.errors())
		}
	})
	b.do(t, "open the player page", 20*time.Second, chromedp.Navigate(pu.String()))
	if !uiGet(t, b, "build the player", 5*time.Second, chromedp.Evaluate[bool](fmt.Sprintf(rewritePlayerJS, rc.play))) {
		t.Fatal("the player script did not run")
	}
	poll := func(what string, d time.Duration, cond func(s rewritePlayState) bool) rewritePlayState {
		t.Helper()
		uiWaitUntil(t, d, what, func() (bool, error) {
			s, err := readRewritePlay(b)
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
	start := poll("playback starts", 40*time.Second, func(s rewritePlayState) bool { return s.CurrentTime > 0.5 && !s.Paused })
	t.Logf("playing; levels %+v, target duration %v s", start.Levels, rc.target)

	// 30 s of play.
	w0, c0 := time.Now(), start.CurrentTime
	for time.Since(w0) < 30*time.Second {
		last = poll("read the player", 5*time.Second, func(rewritePlayState) bool { return true })
		time.Sleep(time.Second) // sampling interval of a fixed window
	}
	if played := last.CurrentTime - c0; played < 25 {
		t.Fatalf("currentTime advanced %.1f s in 30 s, want ≥ 25 s (stalls %+v, log %q)", played, last.Stalls, last.Log)
	}
	t.Logf("30 s window: currentTime %.1f → %.1f; stalls %+v", c0, last.CurrentTime, last.Stalls)

	// A forced level switch plays.
	to := 0
	if last.Level == 0 {
		to = 1
	}
	uiGet(t, b, "switch level", 5*time.Second, chromedp.Evaluate[bool](fmt.Sprintf(`(window.__hls.currentLevel = %d, true)`, to)))
	want := start.Levels[to].Height
	sw := poll(fmt.Sprintf("switched to level %d (%dp)", to, want), 30*time.Second, func(s rewritePlayState) bool {
		return s.VideoHeight == want && len(s.Switched) > 0 && s.Switched[len(s.Switched)-1].Level == to
	})
	c1 := sw.CurrentTime
	poll("currentTime advances on the new level", 15*time.Second, func(s rewritePlayState) bool { return s.CurrentTime > c1+4 })
	uiGet(t, b, "back to automatic levels", 5*time.Second, chromedp.Evaluate[bool](`(window.__hls.currentLevel = -1, true)`))

	// Every segment request so far went to an edge.
	reqs := readSegmentRequests(t, b)
	perEdge := map[string]int{}
	for _, r := range reqs {
		u, _ := url.Parse(r.URL)
		if edgeHosts[u.Host] == nil {
			t.Fatalf("segment request to %s, which is not a CDN edge (edges %v, origin %s)", r.URL, keys(edgeHosts), rc.a.http)
		}
		perEdge[u.Host]++
	}
	if len(reqs) < 10 {
		t.Fatalf("only %d segment requests", len(reqs))
	}
	t.Logf("%d segment requests, per edge %v", len(reqs), perEdge)

	// The cluster page's CDN card shows the 3 edges and this stream's HLS
	// viewer (the player), from its playlist reloads.
	ui := rc.a.signIn(t, "admin", "e2e-admin-password")
	cresp, err := ui.Get("http://" + rc.a.http + "/cluster")
	if err != nil {
		t.Fatal(err)
	}
	cpage, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	stream := rc.st.App + "/" + rc.st.Name
	vm := regexp.MustCompile(`data-hls-viewers="` + regexp.QuoteMeta(stream) + `".*?<td>(\d+)</td>`).FindSubmatch(cpage)
	if n := strings.Count(string(cpage), "data-cdn-edge="); cresp.StatusCode != 200 || n != 3 || vm == nil || string(vm[1]) == "0" {
		t.Errorf("cluster page: HTTP %d, %d CDN edge rows (want 3), HLS viewers of %s %q (want ≥ 1)", cresp.StatusCode, n, stream, vm)
	} else {
		t.Logf("cluster page: 3 CDN edges, %s viewers of %s", vm[1], stream)
	}

	// Kill the edge of the newest segment request.
	newest := reqs[len(reqs)-1]
	for _, r := range reqs {
		if r.Start > newest.Start {
			newest = r
		}
	}
	nu, _ := url.Parse(newest.URL)
	victim := edgeHosts[nu.Host]
	before := poll("read the player", 5*time.Second, func(rewritePlayState) bool { return true })
	nStalls := len(before.Stalls)
	victim.kill(syscall.SIGKILL)
	tKill := time.Now()
	t.Logf("killed %s (%s) at currentTime %.1f", victim.name, victim.httpAddr, before.CurrentTime)
	for time.Since(tKill) < 20*time.Second {
		last = poll("read the player", 5*time.Second, func(rewritePlayState) bool { return true })
		time.Sleep(500 * time.Millisecond) // sampling interval of a fixed window
	}
	if played := last.CurrentTime - before.CurrentTime; played < 14 {
		t.Fatalf("after the kill currentTime advanced %.1f s in 20 s (stalls %+v, log %q)", played, last.Stalls[nStalls:], last.Log)
	}
	limit := 2 * rc.target * 1000
	var long []float64
	for _, s := range last.Stalls[nStalls:] {
		if s.MS > 500 {
			long = append(long, s.MS)
		}
	}
	if len(long) > 1 || (len(long) == 1 && long[0] > limit) || last.StalledNowMS > 500 {
		t.Fatalf("after the kill: stalls over 0.5 s %v ms (now stalled %v ms), want at most one of at most %v ms", long, last.StalledNowMS, limit)
	}
	after := readSegmentRequests(t, b)
	dead := 0
	for _, r := range after[len(reqs):] {
		u, _ := url.Parse(r.URL)
		if edgeHosts[u.Host] == nil {
			t.Fatalf("segment request to %s, not an edge", r.URL)
		}
		if u.Host == victim.httpAddr {
			dead++
		}
	}
	t.Logf("after the kill: currentTime %.1f → %.1f in %v; stalls over 0.5 s %v ms (limit %v ms); %d segment requests, %d to the dead edge; pathways %v; hls.js non-fatal errors %q",
		before.CurrentTime, last.CurrentTime, time.Since(tKill).Round(time.Millisecond), long, limit, len(after)-len(reqs), dead, last.Pathways, last.Log)
	if len(last.Pathways) < 2 {
		t.Errorf("the player did not move to a new content-steering pathway: %v", last.Pathways)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
