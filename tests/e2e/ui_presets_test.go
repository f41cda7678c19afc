package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/web/i18n"
)

// pickPreset chooses a preset in the form's menu as a user does: the
// select's value changes and it fires change (app.js listens).
func pickPreset(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('cfg-preset'); s.value = '` + id + `';
		s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
}

// TestUIPresets: in Chromium, the YouTube preset fills the restream URL
// and shows the key's shape; a key of the wrong shape is refused at its
// field in English and German; the fixed key saves (Enter in the key
// field) with the preset's URL. A ladder preset fills the renditions and
// the saved config compiles into an ffmpeg command with their sizes.
// Without JavaScript, "Apply preset" has the server fill the same fields.
func TestUIPresets(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	s := startUIStack(t, func(c *uiStackConfig) { c.params.Live.Compile.HLSOriginURL = "http://127.0.0.1:9" })
	ctx := context.Background()
	pia, err := s.Store.CreateUser(ctx, "pia", "pia-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(ctx, "live", "presets", pia.ID)
	if err != nil {
		t.Fatal(err)
	}
	form := fmt.Sprintf("%s/streams/%d/configs/new?type=", s.URL, st.ID)
	configs := func() map[string]models.TaskConfig {
		t.Helper()
		list, err := s.Store.ListTaskConfigs(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]models.TaskConfig{}
		for _, c := range list {
			out[c.Name] = c
		}
		return out
	}
	b := newUIBrowser(t)
	b.screenshotOnFailure(t, "presets")
	uiSignIn(t, b, s.URL, "pia", "pia-password")

	// YouTube: the preset fills the URL and the key's placeholder and help.
	b.do(t, "pick YouTube", 20*time.Second,
		chromedp.Navigate(form+"restream"),
		chromedp.WaitVisible(uiCSS("#cfg-preset")),
		pickPreset("youtube"),
	)
	if v := uiGet(t, b, "target", 5*time.Second, chromedp.Value(uiCSS("#cfg-target"))); v != "rtmp://a.rtmp.youtube.com/live2" {
		t.Fatalf("target after the YouTube preset: %q", v)
	}
	if ph := uiGet(t, b, "key placeholder", 5*time.Second, chromedp.Evaluate[string](`document.getElementById('cfg-key').placeholder`)); ph != "xxxx-xxxx-xxxx-xxxx-xxxx" {
		t.Fatalf("key placeholder %q", ph)
	}
	if h := uiGet(t, b, "key help", 5*time.Second, chromedp.Text(uiCSS("#cfg-key-help"))); !strings.Contains(h, "YouTube Studio") {
		t.Fatalf("key help %q", h)
	}
	if n := uiGet(t, b, "visible Save buttons", 5*time.Second, chromedp.Evaluate[int](
		`[...document.querySelectorAll('form.card button[type=submit]')].filter(e => e.getClientRects().length && e.textContent.trim() === 'Save').length`)); n != 1 {
		t.Fatalf("%d Save buttons show, want 1", n)
	}
	if vis := uiGet(t, b, "apply button", 5*time.Second, chromedp.Evaluate[bool](`document.getElementById('apply-preset').getClientRects().length > 0`)); vis {
		t.Fatal("the Apply preset button shows although JavaScript fills at once")
	}
	// A Twitch key for YouTube: refused at the key field, naming the shape.
	b.do(t, "wrong key", 20*time.Second,
		chromedp.SendKeys(uiCSS("#cfg-name"), "yt"),
		chromedp.SendKeys(uiCSS("#cfg-key"), "live_123456_AbCdEf"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS("#cfg-key-error")),
	)
	if msg := uiGet(t, b, "key error", 5*time.Second, chromedp.Text(uiCSS("#cfg-key-error"))); !strings.Contains(msg, "YouTube Live stream keys look like xxxx-xxxx-xxxx-xxxx-xxxx") {
		t.Fatalf("key error %q", msg)
	}
	if a := uiGet(t, b, "aria-invalid", 5*time.Second, chromedp.AttributeValue(uiCSS("#cfg-key"), "aria-invalid")); a.Value != "true" {
		t.Fatalf("key field aria-invalid=%q", a.Value)
	}
	// The form came back with the preset still chosen and its URL.
	if v := uiGet(t, b, "preset kept", 5*time.Second, chromedp.Value(uiCSS("#cfg-preset"))); v != "youtube" {
		t.Fatalf("preset after the refused save: %q", v)
	}
	b.screenshot(t, "preset-key-error")
	b.do(t, "fix the key, Enter saves", 20*time.Second,
		chromedp.SetValue(uiCSS("#cfg-key"), "abcd-1234-efgh-5678-ijkl"),
		chromedp.SendKeys(uiCSS("#cfg-key"), kb.Enter),
		chromedp.WaitVisible(uiCSS(`tr[data-config="yt"]`)),
	)
	yt, ok := configs()["yt"]
	if !ok {
		t.Fatal("no config yt saved")
	}
	sp, _ := yt.Restream()
	if sp.Target != "rtmp://a.rtmp.youtube.com/live2" || sp.Key != "abcd-1234-efgh-5678-ijkl" || sp.Format != "flv" {
		t.Fatalf("stored restream %+v", sp)
	}

	// The ladder preset fills the renditions; saved while the stream is
	// live, the config compiles at once.
	pub := peers.Publish(t, ctx, "rtmp://"+s.Relay.RTMPAddr().String()+"/live/presets?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()
	uiWaitUntil(t, 15*time.Second, "stream live", func() (bool, error) {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		x, err := s.Store.StreamByName(ctx, "live", "presets")
		return err == nil && x.Live, err
	})
	b.do(t, "pick the 1080p ladder", 20*time.Second,
		chromedp.Navigate(form+"hls"),
		chromedp.WaitVisible(uiCSS("#cfg-preset")),
		pickPreset("1080p"),
	)
	const ladder = "1080p 1920x1080 5000 128\n720p 1280x720 2800 128\n480p 854x480 1400 96\n360p 640x360 800 96"
	if v := uiGet(t, b, "renditions", 5*time.Second, chromedp.Value(uiCSS("#cfg-renditions"))); v != ladder {
		t.Fatalf("renditions after the ladder preset:\n%s", v)
	}
	b.do(t, "save the ladder", 20*time.Second,
		chromedp.SendKeys(uiCSS("#cfg-name"), "ladder"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS(`tr[data-config="ladder"]`)),
	)
	lc := configs()["ladder"]
	var args []string
	uiWaitUntil(t, 15*time.Second, "the ladder's task is compiled", func() (bool, error) {
		tasks, _, err := s.Store.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
		for _, tk := range tasks {
			if tk.ConfigID != nil && *tk.ConfigID == lc.ID {
				args = tk.Description.Args
			}
		}
		return len(args) > 0, err
	})
	cmd := strings.Join(args, " ")
	for _, want := range []string{"scale=w=1920:h=1080", "scale=w=1280:h=720", "scale=w=854:h=480", "scale=w=640:h=360", "-b:v:0 5000k", "-b:v:3 800k"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("compiled command lacks %q: %s", want, cmd)
		}
	}

	// German: the key error names the shape in German, and the form has
	// no English left.
	de := "de"
	if _, err := s.Store.UpdateUser(ctx, pia.ID, models.UserUpdate{Language: &de}); err != nil {
		t.Fatal(err)
	}
	b.do(t, "German: Twitch with a YouTube key", 20*time.Second,
		chromedp.Navigate(form+"restream"),
		chromedp.WaitVisible(uiCSS("#cfg-preset")),
		pickPreset("twitch"),
		chromedp.SendKeys(uiCSS("#cfg-name"), "tw"),
		chromedp.SendKeys(uiCSS("#cfg-key"), "abcd-1234-efgh-5678-ijkl"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS("#cfg-key-error")),
	)
	if msg := uiGet(t, b, "German key error", 5*time.Second, chromedp.Text(uiCSS("#cfg-key-error"))); !strings.Contains(msg, "Streamschlüssel von Twitch sehen so aus: live_…") {
		t.Fatalf("German key error %q", msg)
	}
	raw := uiGet(t, b, "page text", 10*time.Second, chromedp.Evaluate[string](pageTextJS))
	var texts []string
	if err := json.Unmarshal([]byte(raw), &texts); err != nil {
		t.Fatal(err)
	}
	if en := untranslated(texts, i18n.DE.Catalogue()); len(en) > 0 {
		t.Errorf("English on the German restream form: %q", en)
	}
	if _, ok := configs()["tw"]; ok {
		t.Fatal("the refused config was saved")
	}

	// Without JavaScript: "Apply preset" has the server fill the fields.
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable JavaScript: %v", err)
	}
	b.do(t, "no JS: apply Facebook", 20*time.Second,
		chromedp.Navigate(form+"restream"),
		chromedp.WaitVisible(uiCSS("#apply-preset")),
		chromedp.SetValue(uiCSS("#cfg-preset"), "facebook"),
		chromedp.SendKeys(uiCSS("#cfg-name"), "fb"),
		chromedp.Click(uiCSS("#apply-preset")),
		chromedp.WaitVisible(uiCSS(`#cfg-target[value="rtmps://live-api-s.facebook.com:443/rtmp/"]`)),
	)
	if ph := uiGet(t, b, "no JS: key placeholder", 5*time.Second, chromedp.AttributeValue(uiCSS("#cfg-key"), "placeholder")); ph.Value != "FB-…" {
		t.Fatalf("key placeholder after Apply %q", ph.Value)
	}
	if _, ok := configs()["fb"]; ok {
		t.Fatal("Apply preset saved the config")
	}
	b.do(t, "no JS: save Facebook", 20*time.Second,
		chromedp.SendKeys(uiCSS("#cfg-key"), "FB-1234567890-0-AbCdEf"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS(`tr[data-config="fb"]`)),
	)
	fb := configs()["fb"]
	if sp, _ := fb.Restream(); sp.Target != "rtmps://live-api-s.facebook.com:443/rtmp/" || sp.Key != "FB-1234567890-0-AbCdEf" {
		t.Fatalf("stored Facebook restream %+v", sp)
	}
	b.do(t, "no JS: apply the audio ladder", 20*time.Second,
		chromedp.Navigate(form+"hls"),
		chromedp.WaitVisible(uiCSS("#apply-preset")),
		chromedp.SetValue(uiCSS("#cfg-preset"), "audio"),
		chromedp.Click(uiCSS("#apply-preset")),
		chromedp.WaitReady(uiCSS(`#cfg-preset option[value="audio"][selected]`)),
	)
	if v := uiGet(t, b, "no JS: renditions", 5*time.Second, chromedp.Value(uiCSS("#cfg-renditions"))); v != "audio audio 128" {
		t.Fatalf("renditions after Apply: %q", v)
	}
}
