package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/web/i18n"
)

// pageTextJS lists what a page shows a reader: its visible text nodes and
// the titles, labels and placeholders of its elements, each trimmed. Code
// blocks (URLs, commands), user input and elements marked
// data-i18n="verbatim" (names, addresses) are not words of the UI.
const pageTextJS = `(() => {
  const out = [];
  const skip = el => el.closest('script,style,code,pre,kbd,samp,textarea,[data-i18n="verbatim"]');
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || skip(el) || !el.getClientRects().length) continue;
    const s = n.textContent.replace(/\s+/g, ' ').trim();
    if (s) out.push(s);
  }
  for (const el of document.querySelectorAll('[title],[aria-label],[placeholder]')) {
    if (skip(el)) continue;
    for (const a of ['title', 'aria-label', 'placeholder']) {
      const s = (el.getAttribute(a) || '').trim();
      if (s) out.push(s);
    }
  }
  return JSON.stringify(out);
})()`

// overflowJS names the elements that stick out of the viewport to the
// right (making the page scroll sideways); content inside a box that
// scrolls on its own (a wide table in its wrapper, a log) does not count.
const overflowJS = `(() => {
  const w = document.documentElement.clientWidth, out = [];
  if (document.documentElement.scrollWidth <= w) return JSON.stringify(out);
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; } return false; };
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > w + 1 && !scrolls(el)) {
      out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') + ' right=' + Math.round(r.right) + ' of ' + w);
      if (out.length >= 5) break;
    }
  }
  return JSON.stringify(out);
})()`

// englishWords are words of English that German does not use, so two of
// them in one text mean a sentence was left in English.
var englishWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`the is are not and of to with when this from for has have yet no
		your you all only than then been while which what there every each until after before
		cannot can't could should would its it's be by at on or any none never stream's task's
		running pending failed stopped starting stopping waiting capacity node nodes refused
		connection retry invalid empty must got directory missing error because exited lost
		expired found denied unknown want needs already started requires please free largest
		heartbeats reports publish key keys rotated enabled disabled deleted created saved`) {
		englishWords[w] = true
	}
}

// untranslated returns the texts that are English: a catalogue message
// shown in its source language, or a text with two words German lacks.
func untranslated(texts []string, cat map[string]string) []string {
	var pats []*regexp.Regexp
	exact := map[string]bool{}
	for en, de := range cat {
		if en == de || len(en) < 4 {
			continue // the same word in both languages ("Name", "Live")
		}
		if strings.Contains(en, "%") {
			q := regexp.QuoteMeta(en)
			q = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`).ReplaceAllString(q, `.+`)
			pats = append(pats, regexp.MustCompile(`^`+q+`$`))
			continue
		}
		exact[en] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range texts {
		if seen[s] {
			continue
		}
		seen[s] = true
		bad := exact[s]
		for _, p := range pats {
			bad = bad || p.MatchString(s)
		}
		if !bad && !strings.Contains(s, "://") {
			n := 0
			for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r == '\'')
			}) {
				if englishWords[w] {
					n++
				}
			}
			bad = n >= 2 || (n == 1 && len(strings.Fields(s)) == 1 && len(s) > 3)
		}
		if bad {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// TestUIGermanWalk signs in as an account set to German and walks every
// page of the UI — with a live stream, tasks running, in backoff and failed,
// nodes, tokens, users, audit events, field errors and error pages — and
// finds no English text on any of them, and nothing that makes a page
// scroll sideways at 1400 px or on a 390 px phone.
func TestUIGermanWalk(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	s := startUIStack(t, func(c *uiStackConfig) { c.concierge = true })
	ctx := context.Background()
	de := "de"
	dora, err := s.Store.CreateUser(ctx, "dora", "dora-password", models.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.UpdateUser(ctx, dora.ID, models.UserUpdate{Language: &de}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(ctx, "emil", "emil-password", models.RoleViewer); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Store.CreateToken(ctx, dora.ID, "walk", []string{"read", "write"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string) map[string]any {
		t.Helper()
		code, raw := apiCall(t, s.URL, tok, method, path, body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		if code >= 300 {
			t.Fatalf("%s %s = %d %s", method, path, code, raw)
		}
		return out
	}
	st := api("POST", "/streams", `{"app":"live","name":"walk"}`)
	id := int64(st["id"].(float64))
	// A webhook endpoint with a delivery in its log (the webhooks page).
	hook, err := s.Store.CreateWebhookEndpoint(ctx, models.WebhookEndpointInput{URL: "https://example.com/receiver",
		Events: []string{models.WebhookStreamLive}, Enabled: true, Description: "Walk"}, models.Actor{Name: "dora"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.AddWebhookDelivery(ctx, &models.WebhookDelivery{EndpointID: hook.ID, EventID: "evt_walk", Event: models.WebhookTest,
		Attempt: 1, StatusCode: 200, DurationMS: 12}); err != nil {
		t.Fatal(err)
	}
	copyStream, err := s.Store.CreateStream(ctx, "live", "walk-copy", dora.ID)
	if err != nil {
		t.Fatal(err)
	}
	relayBase := "rtmp://" + s.Relay.RTMPAddr().String() + "/live"
	cfgID := map[int64]string{}
	addConfig := func(body string) {
		t.Helper()
		out := api("POST", fmt.Sprintf("/streams/%d/task-configs", id), body)
		cfgID[int64(out["id"].(float64))] = out["name"].(string)
	}
	addConfig(fmt.Sprintf(`{"type":"restream","name":"copy","target":%q,"key":%q,"enabled":true}`, relayBase, "walk-copy?key="+copyStream.PublishKey))
	addConfig(`{"type":"record","name":"archive","format":"mp4","segment_seconds":60,"enabled":true}`)
	// The archive went live twice before (its run history): one row in the
	// lists with "3 Läufe", the task page lists the three runs.
	for cid, name := range cfgID {
		if name != "archive" {
			continue
		}
		for _, state := range []string{models.TaskFailed, models.TaskStopped} {
			if err := s.Store.DB.Create(&models.Task{ConfigID: &cid, StreamID: id, Type: models.TypeRecord,
				DesiredState: models.DesiredStopped, State: state,
				Description: models.TaskDescription{Command: "ffmpeg"}}).Error; err != nil {
				t.Fatal(err)
			}
		}
	}
	// Fails at once: nothing listens there.
	addConfig(`{"type":"restream","name":"broken","target":"rtmp://127.0.0.1:9/live","key":"x","enabled":true}`)
	// Too big for the concierge's capacity: stays pending with a reason.
	addConfig(`{"type":"hls","name":"ladder","renditions":[` +
		`{"name":"a","width":1920,"height":1080,"video_bitrate_kbps":6000,"audio_bitrate_kbps":128},` +
		`{"name":"b","width":1280,"height":720,"video_bitrate_kbps":3000,"audio_bitrate_kbps":128},` +
		`{"name":"c","width":960,"height":540,"video_bitrate_kbps":2000,"audio_bitrate_kbps":96},` +
		`{"name":"d","width":640,"height":360,"video_bitrate_kbps":800,"audio_bitrate_kbps":64}],"enabled":true}`)

	b := newUIBrowser(t)
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "de-DE,de;q=0.9"}}); err != nil {
		t.Fatal(err)
	}
	cat := i18n.DE.Catalogue()
	var problems []string
	check := func(page string) {
		t.Helper()
		raw := uiGet(t, b, "read "+page, 10*time.Second, chromedp.Evaluate[string](pageTextJS))
		var texts []string
		if err := json.Unmarshal([]byte(raw), &texts); err != nil {
			t.Fatal(err)
		}
		if len(texts) < 3 {
			t.Fatalf("%s shows only %q", page, texts)
		}
		for _, s := range untranslated(texts, cat) {
			problems = append(problems, fmt.Sprintf("%s: %q", page, s))
		}
		// Nothing makes the page scroll sideways, on a wide screen or a phone.
		for _, width := range []int64{1400, 390} {
			if _, err := chromedp.Call(b.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
				Width: width, Height: 900, DeviceScaleFactor: 1, Mobile: width < 500}); err != nil {
				t.Fatal(err)
			}
			raw := uiGet(t, b, "measure "+page, 10*time.Second, chromedp.Evaluate[string](overflowJS))
			var over []string
			if err := json.Unmarshal([]byte(raw), &over); err != nil {
				t.Fatal(err)
			}
			for _, o := range over {
				problems = append(problems, fmt.Sprintf("%s at %d px: %s overflows", page, width, o))
			}
		}
		if _, err := chromedp.Call(b.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: 1400, Height: 1000, DeviceScaleFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	visit := func(path, wait string) {
		t.Helper()
		b.do(t, "open "+path, 20*time.Second, chromedp.Navigate(s.URL+path), chromedp.WaitVisible(uiCSS(wait)))
		check(path)
	}

	visit("/login", "#username")
	// A failed sign-in shows its error.
	b.do(t, "wrong password", 20*time.Second,
		chromedp.SendKeys(uiCSS("#username"), "dora"), chromedp.SendKeys(uiCSS("#password"), "wrong-password"),
		chromedp.Click(uiCSS("#sign-in")), chromedp.WaitVisible(uiCSS("#login-error")))
	check("/login (wrong password)")
	uiSignIn(t, b, s.URL, "dora", "dora-password")

	pub := peers.Publish(t, ctx, "rtmp://"+s.Relay.RTMPAddr().String()+"/live/walk?key="+st["key"].(string), peers.PublishOpts{})
	defer pub.Stop()
	var states map[string]string
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("task states by config: %v", states)
		}
	}()
	uiWaitUntil(t, 60*time.Second, "the copy runs and the broken restream fails", func() (bool, error) {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		tasks, _, err := s.Store.ListTasks(ctx, models.TaskFilter{StreamID: id})
		states = map[string]string{}
		for _, tk := range tasks {
			if tk.ConfigID != nil {
				states[cfgID[*tk.ConfigID]] = tk.State + " " + tk.LastError
			}
		}
		return strings.HasPrefix(states["copy"], models.TaskRunning) && states["broken"] != "" &&
			!strings.HasPrefix(states["broken"], models.TaskRunning) && states["ladder"] != "" && states["archive"] != "", err
	})
	stream := fmt.Sprintf("/streams/%d", id)
	visit("/", "main h1")
	visit("/streams", `tr[data-stream="walk"][data-live="true"]`)
	visit(stream, `#stream-tasks tr[data-config="copy"][data-state="running"]`)
	// archiveRuns is how many tasks the archive config has had: the two
	// earlier runs and this go-live's (a failing recorder may add more).
	archiveRuns := func() int {
		t.Helper()
		for cid, name := range cfgID {
			if name == "archive" {
				_, n, err := s.Store.ListTasks(ctx, models.TaskFilter{ConfigID: cid})
				if err != nil {
					t.Fatal(err)
				}
				return int(n)
			}
		}
		t.Fatal("no archive config")
		return 0
	}
	runs := uiGet(t, b, "archive runs", 10*time.Second, chromedp.Evaluate[string](
		`Array.from(document.querySelectorAll('#stream-tasks tr[data-config="archive"]')).map(r => r.querySelector('.runs')?.textContent.trim()).join('|')`))
	if n := archiveRuns(); n < 3 || runs != fmt.Sprintf("%d Läufe", n) {
		t.Errorf("the stream page's archive rows say %q; want one row with \"%d Läufe\" (at least 3)", runs, n)
	}
	b.do(t, "reveal key", 20*time.Second, chromedp.Click(uiCSS("#reveal-key")), chromedp.WaitVisible(uiCSS("#ingest-url")))
	check(stream + " (key revealed)")
	for _, typ := range []string{"restream", "record", "pull", "hls"} {
		visit(stream+"/configs/new?type="+typ, "#save-config")
	}
	// Every field error at once, in German.
	b.do(t, "invalid restream", 20*time.Second,
		chromedp.Navigate(s.URL+stream+"/configs/new?type=restream"),
		chromedp.WaitVisible(uiCSS("#cfg-target")),
		chromedp.SendKeys(uiCSS("#cfg-name"), "bad name!"),
		chromedp.SendKeys(uiCSS("#cfg-target"), "http://not-rtmp.example/live"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS(`[aria-invalid="true"]`)))
	check("restream form with errors")
	for _, id := range []string{"#cfg-name-error", "#cfg-target-error"} {
		if n := uiGet(t, b, "error "+id, 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('`+id+`').length`)); n != 1 {
			t.Errorf("the form shows %d %s, want every field's error at once", n, id)
		}
	}
	// An explicit segment length of 0 is an error at its field, not 60.
	b.do(t, "record with 0 s segments", 20*time.Second,
		chromedp.Navigate(s.URL+stream+"/configs/new?type=record"),
		chromedp.WaitVisible(uiCSS("#cfg-name")),
		chromedp.SendKeys(uiCSS("#cfg-name"), "zero"),
		chromedp.SetValue(uiCSS("#cfg-segment"), "0"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS("#cfg-segment-error")))
	check("record form with 0 s segments")
	visit(stream+"/rotate-key", "button#confirm")
	visit(stream+"/kick", "button#confirm")
	visit(stream+"/delete", "button#confirm")
	visit("/tasks", "main h1")
	tasks, _, err := s.Store.ListTasks(ctx, models.TaskFilter{StreamID: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		visit(fmt.Sprintf("/tasks/%d", tk.ID), "main h1")
		if tk.ConfigID != nil && cfgID[*tk.ConfigID] == "archive" {
			if n, want := uiGet(t, b, "run history", 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#runs tr[data-run]').length`)), archiveRuns(); n != want || n < 3 {
				t.Errorf("task %d's run history has %d rows; want the archive's %d runs (at least 3)", tk.ID, n, want)
			}
		}
	}
	for _, p := range []string{"/cluster", "/tokens", "/account", "/admin/users", "/admin/audit", "/admin/webhooks", "/admin/audit?plays=1", "/admin/audit?since=bad", "/streams/999999"} {
		visit(p, "main h1")
	}
	if len(problems) > 0 {
		t.Errorf("English on German pages (%d):\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// The English finder flags English the walk must catch and passes every
// German text of the catalogue.
func TestUntranslatedFinder(t *testing.T) {
	cat := i18n.DE.Catalogue()
	for _, en := range []string{"target refused connection (retry 1 in 500ms)", "invalid task config: HLS origin is empty",
		"No streams yet.", "running", "Every task is fine."} {
		if got := untranslated([]string{en}, cat); len(got) != 1 {
			t.Errorf("%q not flagged", en)
		}
	}
	var german []string
	for _, de := range cat {
		german = append(german, de)
	}
	for _, s := range untranslated(german, cat) {
		t.Errorf("German text flagged as English: %q", s)
	}
}
