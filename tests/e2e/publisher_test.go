package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/web/i18n"
)

// publisherStats is the part of a stream's API statistics about its
// publisher and GOP.
type publisherStats struct {
	Live  bool `json:"live"`
	Stats *struct {
		PublisherAddr     string  `json:"publisher_addr"`
		PublisherProtocol string  `json:"publisher_protocol"`
		Encoder           string  `json:"encoder"`
		GOPSeconds        float64 `json:"gop_seconds"`
		GOPFrames         int     `json:"gop_frames"`
	} `json:"stats"`
}

// waitPublisher waits until the API shows stream id's publisher over proto
// with a measured GOP, and returns the statistics.
func (a *allInOne) waitPublisher(t *testing.T, id uint, proto string) publisherStats {
	t.Helper()
	var ps publisherStats
	testutil.Eventually(t, 30*time.Second, "the API shows the "+proto+" publisher and its GOP", func() bool {
		ps = publisherStats{}
		a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d", id), nil, &ps)
		return ps.Live && ps.Stats != nil && ps.Stats.PublisherProtocol == proto && ps.Stats.GOPFrames > 0
	})
	return ps
}

// publishGOP50 publishes a 25 fps test picture with a keyframe every 50
// frames (ffmpeg -r 25 -g 50) and waits until the stream is live.
func (a *allInOne) publishGOP50(t *testing.T, ctx context.Context, url string, id uint) *peers.Proc {
	t.Helper()
	pub := peers.Publish(t, ctx, url, peers.PublishOpts{FrameRate: 25, GOP: 50})
	testutil.Eventually(t, 20*time.Second, "stream live", func() bool { return a.live(t, id) })
	if err := pub.WaitFrames(ctx, 50); err != nil {
		t.Fatalf("publisher sends no frames: %v\n%s", err, pub.Stderr())
	}
	return pub
}

// kickAudited reports whether the audit log has a stream.kick of stream id
// by actor.
func (a *allInOne) kickAudited(t *testing.T, id uint, actor string) bool {
	t.Helper()
	var out struct {
		Items []struct{ Actor, Object string } `json:"items"`
	}
	a.api(t, "GET", "/api/v1/audit?limit=100&action=stream.kick", nil, &out)
	for _, e := range out.Items {
		if e.Object == models.StreamObject(int64(id)) && e.Actor == actor {
			return true
		}
	}
	return false
}

var loopbackAddrRE = regexp.MustCompile(`^127\.0\.0\.1:\d+$`)

// A real ffmpeg publishing over RTMP and RTSP to `portier run`: the API
// and the stream page (English and German, in Chromium) show the
// publisher's address, its encoder (Lavf…) and the GOP of -r 25 -g 50 as
// 2 s / 50 frames. A kick from the page and one from the API each end the
// publish within one heartbeat, are audited, take the stream offline, and
// do not ban: the encoder publishes again with the same key.
func TestPublisherInfoAndKick(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t)
	const relayNode = "e2e-origin"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "pubinfo"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	path := fmt.Sprintf("/api/v1/streams/%d", st.ID)

	pub := a.publishGOP50(t, ctx, st.Ingest.RTMPURL, st.ID)
	ps := a.waitPublisher(t, st.ID, "rtmp")
	s := ps.Stats
	t.Logf("rtmp publisher: %s, encoder %q, gop %.3f s / %d frames", s.PublisherAddr, s.Encoder, s.GOPSeconds, s.GOPFrames)
	if !loopbackAddrRE.MatchString(s.PublisherAddr) || !strings.HasPrefix(s.Encoder, "Lavf") || s.GOPSeconds != 2 || s.GOPFrames != 50 {
		t.Fatalf("API stats: publisher %q, encoder %q, gop %v s / %d frames; want 127.0.0.1:PORT, Lavf…, 2 s / 50 frames",
			s.PublisherAddr, s.Encoder, s.GOPSeconds, s.GOPFrames)
	}

	// The stream page, in English, then in German.
	base := "http://" + a.http
	b := newUIBrowser(t)
	b.screenshotOnFailure(t, "publisher")
	// A second admin: the page must show no English word, and "admin"
	// (the first account's name, in the navigation) is one.
	add := exec.Command(peers.PortierBinary(t), "user", "add", "--username", "dora", "--role", "admin", "--data-dir", a.dir)
	add.Stdin = strings.NewReader("dora-password-1\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("portier user add: %v\n%s", err, out)
	}
	uiSignIn(t, b, base, "dora", "dora-password-1")
	page := fmt.Sprintf("%s/streams/%d", base, st.ID)
	readFacts := func() (addr, enc, gop string) {
		t.Helper()
		b.do(t, "open the stream page", 20*time.Second, chromedp.Navigate(page), chromedp.WaitVisible(uiCSS("#stream-gop")))
		addr = uiGet(t, b, "publisher", 5*time.Second, chromedp.Text(uiCSS("#publisher-addr")))
		enc = uiGet(t, b, "encoder", 5*time.Second, chromedp.Text(uiCSS("#publisher-encoder")))
		gop = uiGet(t, b, "gop", 5*time.Second, chromedp.Text(uiCSS("#stream-gop")))
		return addr, enc, gop
	}
	addr, enc, gop := readFacts()
	if addr != s.PublisherAddr+" (RTMP)" || enc != s.Encoder || gop != "2.0 s (50 frames)" {
		t.Fatalf("English page: publisher %q, encoder %q, GOP %q; want %q, %q, %q", addr, enc, gop, s.PublisherAddr+" (RTMP)", s.Encoder, "2.0 s (50 frames)")
	}
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "de-DE,de;q=0.9"}}); err != nil {
		t.Fatal(err)
	}
	cat := i18n.DE.Catalogue()
	noEnglish := func(what string) {
		t.Helper()
		raw := uiGet(t, b, "read "+what, 10*time.Second, chromedp.Evaluate[string](pageTextJS))
		var texts []string
		if err := json.Unmarshal([]byte(raw), &texts); err != nil {
			t.Fatal(err)
		}
		if bad := untranslated(texts, cat); len(bad) > 0 {
			t.Errorf("English on the German %s: %q", what, bad)
		}
	}
	addr, enc, gop = readFacts()
	if addr != s.PublisherAddr+" (RTMP)" || enc != s.Encoder || gop != "2,0 s (50 Bilder)" {
		t.Fatalf("German page: publisher %q, encoder %q, GOP %q; want GOP %q", addr, enc, gop, "2,0 s (50 Bilder)")
	}
	labels := uiGet(t, b, "labels", 5*time.Second, chromedp.Evaluate[string](`[...document.querySelectorAll('#stream-live dt')].map(e => e.textContent.trim()).join('|')`))
	if !strings.Contains(labels, "Quelle|") || !strings.Contains(labels, "GOP (Keyframe-Abstand)") {
		t.Fatalf("German labels %q", labels)
	}
	noEnglish("stream page")

	// Kick from the page (German): the confirm page says it is no ban.
	b.do(t, "open the kick confirmation", 20*time.Second, chromedp.Click(uiCSS("#kick-publisher")), chromedp.WaitVisible(uiCSS("button#confirm")))
	detail := uiGet(t, b, "confirm text", 5*time.Second, chromedp.Text(uiCSS("main")))
	if !strings.Contains(detail, "keine Sperre") {
		t.Fatalf("the kick confirmation does not say it is no ban: %q", detail)
	}
	noEnglish("kick confirmation")
	start := time.Now()
	b.do(t, "kick", 20*time.Second, chromedp.Click(uiCSS("button#confirm")), chromedp.WaitVisible(uiCSS("#stream-live")))
	if loc := uiGet(t, b, "location", 5*time.Second, chromedp.Location()); !strings.Contains(loc, "done=publisher-kicked") {
		t.Fatalf("after the kick the browser is at %s", loc)
	}
	waitClosed(t, pub, start, "kick from the UI")
	testutil.Eventually(t, 10*time.Second, "stream offline after the kick", func() bool { return !a.live(t, st.ID) })
	if !a.kickAudited(t, st.ID, "dora") || !a.auditHas(t, "publish.end", st.ID, relayNode, "publisher kicked") ||
		!a.auditHas(t, "publish.revoke", st.ID, relayNode, "publisher kicked") {
		t.Fatal("no audit events of the kick naming the stream, the actor and the relay")
	}

	// Not a ban: the encoder reconnects with the same key.
	pub = a.publishGOP50(t, ctx, st.Ingest.RTMPURL, st.ID)

	// Kick through the API.
	var kick struct {
		StreamID int64 `json:"stream_id"`
		Ended    []struct {
			Node      string `json:"node"`
			PublishID int64  `json:"publish_id"`
		} `json:"ended"`
	}
	start = time.Now()
	if code := a.api(t, "POST", path+"/kick", nil, &kick); code != http.StatusAccepted || len(kick.Ended) != 1 || kick.Ended[0].Node != relayNode {
		t.Fatalf("kick: HTTP %d %+v", code, kick)
	}
	waitClosed(t, pub, start, "kick from the API")
	testutil.Eventually(t, 10*time.Second, "stream offline after the API kick", func() bool { return !a.live(t, st.ID) })
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code := a.api(t, "POST", path+"/kick", nil, &apiErr); code != http.StatusConflict || !strings.Contains(apiErr.Error.Message, "no publisher") {
		t.Fatalf("kick of an offline stream: HTTP %d %+v, want 409 saying there is no publisher", code, apiErr)
	}

	// An RTSP publisher: the encoder is its User-Agent.
	rtspURL := fmt.Sprintf("rtsp://%s/live/pubinfo?key=%s", a.rtsp, st.Key)
	pub = a.publishGOP50(t, ctx, rtspURL, st.ID)
	ps = a.waitPublisher(t, st.ID, "rtsp")
	s = ps.Stats
	t.Logf("rtsp publisher: %s, encoder %q, gop %.3f s / %d frames", s.PublisherAddr, s.Encoder, s.GOPSeconds, s.GOPFrames)
	if !loopbackAddrRE.MatchString(s.PublisherAddr) || !strings.HasPrefix(s.Encoder, "Lavf") || s.GOPSeconds != 2 || s.GOPFrames != 50 {
		t.Fatalf("RTSP API stats: publisher %q, encoder %q, gop %v s / %d frames; want 127.0.0.1:PORT, Lavf…, 2 s / 50 frames",
			s.PublisherAddr, s.Encoder, s.GOPSeconds, s.GOPFrames)
	}
	start = time.Now()
	if code := a.api(t, "POST", path+"/kick", nil, &kick); code != http.StatusAccepted {
		t.Fatalf("kick the RTSP publisher: HTTP %d", code)
	}
	waitClosed(t, pub, start, "kick of the RTSP publisher")
	testutil.Eventually(t, 10*time.Second, "stream offline after the RTSP kick", func() bool { return !a.live(t, st.ID) })
}
