// Package e2e holds end-to-end tests that drive Portier with real clients:
// ffmpeg publishes, Debian's Chromium operates the web UI.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/web"
)

const uiChromiumPath = "/usr/bin/chromium"

// uiStack is a control plane and an origin relay behind one HTTP address,
// as `portier run` serves them: the UI and API, and HTTP-FLV at
// /APP/NAME.flv.
type uiStack struct {
	URL   string
	Store *models.Store
	Relay *relay.Relay
}

// uiStackConfig adjusts startUIStack: the control plane's parameters and
// whether its background loops (reaper, scheduler) run.
type uiStackConfig struct {
	params       portier.Params
	noBackground bool
	// concierge runs a concierge (in this process, with Debian's Python
	// supervisord) so compiled tasks really run.
	concierge bool
}

func startUIStack(t *testing.T, opts ...func(*uiStackConfig)) *uiStack {
	t.Helper()
	st := modelstest.SQLite(t)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	front := httptest.NewUnstartedServer(nil)
	base := "http://" + front.Listener.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	rl, err := relay.New(relay.Params{Role: relay.RoleOrigin, Name: "origin-e2e", RTMPAddr: "127.0.0.1:0",
		ControlURL: base, ClusterToken: uiClusterToken, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); rl.Close() })
	_, port, _ := net.SplitHostPort(rl.RTMPAddr().String())
	var rtmpPort int
	fmt.Sscan(port, &rtmpPort)

	cfg := uiStackConfig{params: portier.Params{Store: st, Logger: logger, ClusterToken: uiClusterToken, PublicHost: "127.0.0.1", RTMPPort: rtmpPort}}
	cfg.params.Live.Compile.RelayRTMPURL = "rtmp://" + rl.RTMPAddr().String()
	for _, f := range opts {
		f(&cfg)
	}
	srv, err := portier.New(cfg.params)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.noBackground {
		srv.StartBackground(ctx)
	}
	flv := regexp.MustCompile(`^/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+\.flv$`)
	relayHTTP := rl.HTTPHandler()
	front.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && flv.MatchString(r.URL.Path) {
			relayHTTP.ServeHTTP(w, r)
			return
		}
		srv.Handler().ServeHTTP(w, r)
	})
	front.Start()
	t.Cleanup(front.Close)
	if cfg.concierge {
		startUIConcierge(t, front.URL, rl.RTMPAddr().String(), logger)
	}
	return &uiStack{URL: front.URL, Store: st, Relay: rl}
}

// uiClusterToken authenticates the UI stack's relay and concierge (no
// caller is trusted for being on loopback).
const uiClusterToken = "ui-e2e-cluster-token"

// startUIConcierge runs a concierge against the control plane at control
// until the test ends.
func startUIConcierge(t *testing.T, control, relayRTMP string, logger *slog.Logger) {
	t.Helper()
	c, err := concierge.New(concierge.Params{Control: control, ClusterToken: uiClusterToken, Name: "worker-e2e", Capacity: 4, RelayRTMP: relayRTMP,
		DataDir: t.TempDir(), SupervisorBinary: supervisortest.Python(t), DrainTimeout: 2 * time.Second,
		BackoffMin: 500 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("concierge: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the concierge did not stop within 30 s")
		}
	})
}

// browser is a fresh headless Chromium; it collects console errors (CSP
// violations, exceptions) for the test to check.
type uiBrowser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func newUIBrowser(t *testing.T) *uiBrowser {
	t.Helper()
	if _, err := os.Stat(uiChromiumPath); err != nil {
		t.Fatalf("chromium is required at %s (apt-get install chromium): %v", uiChromiumPath, err)
	}
	if missing := web.VendorMissing(); len(missing) > 0 {
		t.Fatalf("the UI's vendor assets were not built into this binary (%v): run `make assets` (or `make test`) first", missing)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(uiChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	b := &uiBrowser{ctx: ctx}
	// The first action starts the browser: no timeout on it (see chromedp.Run).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *uiBrowser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func (b *uiBrowser) fail(t *testing.T, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	t.Fatalf("%s: %v (page %s; console errors %v)", what, err, loc, b.errors())
}

// do runs steps with a timeout.
func (b *uiBrowser) do(t *testing.T, what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(t, what, err)
	}
}

// get runs one action with a timeout and returns its value.
func uiGet[T any](t *testing.T, b *uiBrowser, what string, d time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

// screenshot saves the page under tests/artifacts (not committed).
func (b *uiBrowser) screenshot(t *testing.T, name string) {
	t.Helper()
	img := uiGet(t, b, "screenshot "+name, 20*time.Second, chromedp.FullScreenshot(100))
	if err := writeArtifact("ui-"+name+".png", img); err != nil {
		t.Fatal(err)
	}
}

// screenshotOnFailure saves the page as ui-NAME-failed.png under
// tests/artifacts if the test fails (registered after newUIBrowser, it runs
// before the browser closes).
func (b *uiBrowser) screenshotOnFailure(t *testing.T, name string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = writeArtifact("ui-"+name+"-failed.png", img)
		}
		if err != nil {
			t.Logf("screenshot of the failure: %v", err)
			return
		}
		t.Logf("screenshot of the failure: tests/artifacts/ui-%s-failed.png", name)
	})
}

func writeArtifact(name string, b []byte) error {
	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

type uiCSS = chromedp.CSS

func uiSignIn(t *testing.T, b *uiBrowser, base, user, pw string) {
	t.Helper()
	b.do(t, "sign in as "+user, 20*time.Second,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(uiCSS("#username")),
		chromedp.SendKeys(uiCSS("#username"), user),
		chromedp.SendKeys(uiCSS("#password"), pw),
		chromedp.Click(uiCSS("#sign-in")),
		chromedp.WaitVisible(uiCSS("form.logout")),
	)
}

// apiCall calls the REST API at base+"/api/v1"+path with a bearer token;
// body is nil, a JSON string, or a value to marshal. It returns the status
// and the body.
func apiCall(t *testing.T, base, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+"/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// uiPostForm submits an empty form (with the page's CSRF token) to path,
// as a crafted request from a signed-in browser would: for actions the page
// does not offer.
func uiPostForm(t *testing.T, b *uiBrowser, path string) {
	t.Helper()
	uiGet(t, b, "post "+path, 5*time.Second, chromedp.Evaluate[bool](`(() => {
		const f = document.createElement('form'); f.method = 'post'; f.action = '`+path+`';
		f.appendChild(document.querySelector('input[name="_csrf"]').cloneNode()); document.body.appendChild(f); f.submit(); return true; })()`))
}

// waitUntil polls cond until it holds or d passes.
// previewAdvances waits until the preview video's currentTime has moved on
// by more than a second: the player really plays, not just loaded.
func previewAdvances(t *testing.T, b *uiBrowser) {
	t.Helper()
	const curTime = `document.getElementById('preview').currentTime`
	t1 := uiGet(t, b, "read currentTime", 5*time.Second, chromedp.Evaluate[float64](curTime))
	uiWaitUntil(t, 10*time.Second, "preview currentTime advances", func() (bool, error) {
		t2, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](curTime))
		return err == nil && t2 > t1+1, err
	})
}

func uiWaitUntil(t *testing.T, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error: %v)", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUIEndToEnd(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	s := startUIStack(t, func(c *uiStackConfig) { c.concierge = true })
	ctx := context.Background()
	alice, err := s.Store.CreateUser(ctx, "alice", "alice-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	// The restream's target: a second stream on the same relay.
	copyStream, err := s.Store.CreateStream(ctx, "live", "e2e-copy", alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(ctx, "bob", "bob-password", models.RoleOperator); err != nil {
		t.Fatal(err)
	}
	b := newUIBrowser(t)
	// Keyboard only: the user name field has focus, Tab moves to the
	// password, Enter submits; on the next page Tab reaches the skip link.
	b.do(t, "sign in with the keyboard", 20*time.Second,
		chromedp.Navigate(s.URL+"/login"),
		chromedp.WaitVisible(uiCSS("#username")),
	)
	if id := uiGet(t, b, "focus", 5*time.Second, chromedp.Evaluate[string](`document.activeElement.id`)); id != "username" {
		t.Fatalf("focus on %q, want the user name field", id)
	}
	b.do(t, "type credentials", 20*time.Second,
		chromedp.KeyEvent("alice"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("alice-password"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(uiCSS("form.logout")),
		chromedp.KeyEvent(kb.Tab),
	)
	if cls := uiGet(t, b, "skip link", 5*time.Second, chromedp.Evaluate[string](`document.activeElement.className`)); cls != "skip" {
		t.Fatalf("first Tab focuses %q, want the skip link", cls)
	}
	b.screenshot(t, "dashboard")

	// Create a stream through the form.
	b.do(t, "create stream", 20*time.Second,
		chromedp.Navigate(s.URL+"/streams"),
		chromedp.WaitVisible(uiCSS("#stream-name")),
		chromedp.SendKeys(uiCSS("#stream-name"), "e2e"),
		chromedp.Click(uiCSS("#create-stream")),
		chromedp.WaitVisible(uiCSS("#reveal-key")),
	)
	loc := uiGet(t, b, "location", 5*time.Second, chromedp.Location())
	m := regexp.MustCompile(`/streams/(\d+)`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("after create the browser is at %s", loc)
	}
	streamPage := s.URL + "/streams/" + m[1]

	// Reveal the key (htmx swaps the ingest block) and read the ffmpeg URL.
	b.do(t, "reveal key", 20*time.Second,
		chromedp.Click(uiCSS("#reveal-key")),
		chromedp.WaitVisible(uiCSS("#ingest-url")),
	)
	ingest := uiGet(t, b, "read ingest URL", 5*time.Second, chromedp.Text(uiCSS("#ingest-url")))
	ffmpegCmd := uiGet(t, b, "read ffmpeg command", 5*time.Second, chromedp.Text(uiCSS("#ffmpeg-cmd")))
	if !strings.HasPrefix(ingest, "rtmp://127.0.0.1:") || !strings.Contains(ingest, "/live/e2e?key=") || !strings.Contains(ffmpegCmd, ingest) {
		t.Fatalf("ingest URL %q, ffmpeg command %q", ingest, ffmpegCmd)
	}
	b.screenshot(t, "stream-revealed")

	// Watch the list while ffmpeg publishes: the row turns live without a reload.
	b.do(t, "open list", 20*time.Second,
		chromedp.Navigate(s.URL+"/streams"),
		chromedp.WaitVisible(uiCSS(`tr[data-stream="e2e"][data-live="false"]`)),
	)
	uiGet(t, b, "mark the page", 5*time.Second, chromedp.Evaluate[bool](`window.__noReload = true`))
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	started := time.Now()
	pub := peers.Publish(t, pubCtx, ingest, peers.PublishOpts{})
	uiWaitUntil(t, 15*time.Second, "control plane marks the stream live", func() (bool, error) {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		st, err := s.Store.StreamByName(ctx, "live", "e2e")
		return err == nil && st.Live, err
	})
	liveAt := time.Now()
	b.do(t, "list shows live within 5 s without reload", 5*time.Second,
		chromedp.WaitVisible(uiCSS(`tr[data-stream="e2e"][data-live="true"] .badge.live`)))
	if !uiGet(t, b, "check no reload", 5*time.Second, chromedp.Evaluate[bool](`window.__noReload === true`)) {
		t.Fatal("the page was reloaded")
	}
	t.Logf("stream live in the UI %v after the control plane saw it (%v after ffmpeg started)",
		time.Since(liveAt).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	b.screenshot(t, "streams-live")

	// The preview plays HTTP-FLV through mpegts.js: currentTime advances.
	b.do(t, "preview plays", 30*time.Second,
		chromedp.Navigate(streamPage),
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="playing"]`)),
	)
	previewAdvances(t, b)
	b.screenshot(t, "stream-preview")

	// A restream config: an invalid URL shows the error at the field, a valid one saves.
	b.do(t, "invalid restream", 20*time.Second,
		chromedp.Navigate(streamPage+"/configs/new?type=restream"),
		chromedp.WaitVisible(uiCSS("#cfg-target")),
		chromedp.SendKeys(uiCSS("#cfg-name"), "yt"),
		chromedp.SendKeys(uiCSS("#cfg-target"), "http://not-rtmp.example/live"),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS("#cfg-target-error")),
	)
	if a := uiGet(t, b, "field marked invalid", 5*time.Second, chromedp.AttributeValue(uiCSS("#cfg-target"), "aria-invalid")); a.Value != "true" {
		t.Fatalf("target field aria-invalid=%q", a.Value)
	}
	b.screenshot(t, "config-error")
	relayBase := "rtmp://" + s.Relay.RTMPAddr().String() + "/live"
	b.do(t, "valid restream", 20*time.Second,
		chromedp.SetValue(uiCSS("#cfg-target"), relayBase),
		chromedp.SendKeys(uiCSS("#cfg-key"), "e2e-copy?key="+copyStream.PublishKey),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS(`tr[data-config="yt"]`)),
		// The stream is live, so the config's task exists at once.
		chromedp.WaitVisible(uiCSS(`#stream-tasks tr[data-config="yt"]`)),
	)
	// A concierge runs it: the task turns running on the page (htmx
	// refresh) and the copy goes live on the relay.
	b.do(t, "task reaches running", 60*time.Second,
		chromedp.WaitVisible(uiCSS(`#stream-tasks tr[data-config="yt"][data-state="running"]`)))
	uiWaitUntil(t, 30*time.Second, "the restream target goes live", func() (bool, error) {
		st, err := s.Store.StreamByName(ctx, "live", "e2e-copy")
		return err == nil && st.Live, err
	})
	if node := uiGet(t, b, "task node", 5*time.Second, chromedp.Text(uiCSS(`#stream-tasks tr[data-config="yt"] td:nth-of-type(4)`))); node != "worker-e2e" {
		t.Fatalf("task node %q", node)
	}
	b.screenshot(t, "stream-tasks")
	// The running ffmpeg reports its progress through the concierge (every
	// 5 s): frame rate, bitrate and speed show in the row.
	progressRE := regexp.MustCompile(`\d+ fps · \d+(\.\d)? [kM]bit/s · \d\.\d\d×`)
	var prog string
	uiWaitUntil(t, 40*time.Second, "task progress with fps, bitrate and speed", func() (bool, error) {
		// The first sample may come before ffmpeg has a rate; the table refreshes itself.
		prog = uiGet(t, b, "progress", 5*time.Second, chromedp.Evaluate[string](
			`(document.querySelector('#stream-tasks tr[data-config="yt"] .progress') || {textContent: ''}).textContent.trim()`))
		return progressRE.MatchString(prog), nil
	})
	t.Logf("task progress: %s", prog)

	// Rotate the key (with confirmation); the old key is refused at once.
	stopPub()
	pub.Wait()
	uiWaitUntil(t, 15*time.Second, "stream offline after ffmpeg stopped", func() (bool, error) {
		st, err := s.Store.StreamByName(ctx, "live", "e2e")
		return err == nil && !st.Live, err
	})
	b.do(t, "rotate key", 20*time.Second,
		chromedp.Navigate(streamPage),
		chromedp.Click(uiCSS("#rotate-key")),
		chromedp.WaitVisible(uiCSS("button#confirm")),
		chromedp.Click(uiCSS("button#confirm")),
		chromedp.WaitVisible(uiCSS("#ingest-url")),
	)
	newIngest := uiGet(t, b, "read new ingest URL", 5*time.Second, chromedp.Text(uiCSS("#ingest-url")))
	if newIngest == ingest || !strings.Contains(newIngest, "/live/e2e?key=") {
		t.Fatalf("ingest after rotation %q (before %q)", newIngest, ingest)
	}
	b.screenshot(t, "key-rotated")
	old := peers.Publish(t, ctx, ingest, peers.PublishOpts{Duration: 20 * time.Second})
	if err, done := old.WaitTimeout(15 * time.Second); !done || err == nil {
		t.Fatalf("publish with the old key was not refused (done=%v err=%v)", done, err)
	}
	fresh := peers.Publish(t, ctx, newIngest, peers.PublishOpts{})
	uiWaitUntil(t, 15*time.Second, "publish with the new key goes live", func() (bool, error) {
		if fresh.Exited() {
			t.Fatalf("ffmpeg with the new key exited: %s", fresh.Stderr())
		}
		st, err := s.Store.StreamByName(ctx, "live", "e2e")
		return err == nil && st.Live, err
	})
	fresh.Stop()

	// Other pages render (screenshots for review).
	for _, p := range []string{"tasks", "cluster", "tokens", "account"} {
		b.do(t, "open "+p, 20*time.Second, chromedp.Navigate(s.URL+"/"+p), chromedp.WaitVisible(uiCSS("main h1")))
		b.screenshot(t, p)
	}

	// Another operator gets a 403 page for alice's stream.
	b.do(t, "sign out", 20*time.Second,
		chromedp.Click(uiCSS("form.logout button")),
		chromedp.WaitVisible(uiCSS("#username")))
	uiSignIn(t, b, s.URL, "bob", "bob-password")
	b.do(t, "bob opens alice's stream", 20*time.Second,
		chromedp.Navigate(streamPage),
		chromedp.WaitVisible(uiCSS(".error-status")),
	)
	if status := uiGet(t, b, "read status", 5*time.Second, chromedp.Text(uiCSS(".error-status"))); !strings.Contains(status, "403") {
		t.Fatalf("bob sees %q", status)
	}
	b.screenshot(t, "forbidden")

	// No CSP violation or script error on any page.
	for _, e := range b.errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Uncaught") {
			t.Errorf("browser console: %s", e)
		}
	}
}

// TestUIFormsWithoutJavaScript signs in, creates a stream and reveals its
// key with JavaScript disabled: every form is a plain HTML form.
func TestUIFormsWithoutJavaScript(t *testing.T) {
	s := startUIStack(t)
	if _, err := s.Store.CreateUser(context.Background(), "carol", "carol-password", models.RoleOperator); err != nil {
		t.Fatal(err)
	}
	b := newUIBrowser(t)
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable JavaScript: %v", err)
	}
	uiSignIn(t, b, s.URL, "carol", "carol-password")
	b.do(t, "create and reveal without JS", 20*time.Second,
		chromedp.Navigate(s.URL+"/streams"),
		chromedp.WaitReady(uiCSS("#stream-name")),
		chromedp.SendKeys(uiCSS("#stream-name"), "nojs"),
		chromedp.Click(uiCSS("#create-stream")),
		chromedp.WaitReady(uiCSS("#reveal-key")),
		chromedp.Click(uiCSS("#reveal-key")),
		chromedp.WaitReady(uiCSS("#obs-key")),
	)
	html := uiGet(t, b, "read OBS key", 5*time.Second, chromedp.OuterHTML(uiCSS("#obs-key")))
	st, err := s.Store.StreamByName(context.Background(), "live", "nojs")
	if err != nil || !strings.Contains(html, st.PublishKey) {
		t.Fatalf("OBS key element %q, stream %+v, %v", html, st, err)
	}
	for _, e := range b.errors() {
		if strings.Contains(e, "Content Security Policy") {
			t.Errorf("browser console: %s", e)
		}
	}
}

// TestUIPreviewHLS plays a stream's HLS output with hls.js in the preview:
// ffmpeg writes a live HLS playlist that a separate HTTP server (standing in
// for the HLS origin, with CORS) serves, and the stream has a running HLS
// task whose output is that playlist.
func TestUIPreviewHLS(t *testing.T) {
	bin := peers.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	hlsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-cache")
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	t.Cleanup(hlsSrv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-c:a", "aac",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments", filepath.Join(dir, "index.m3u8"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	// The stream's live state and HLS task are written to the store as the
	// hooks and a concierge would; the background loops stay off so they do
	// not expire the origin and the task of nodes that do not exist here.
	s := startUIStack(t, func(c *uiStackConfig) {
		c.params.Live.Compile.HLSOriginURL = hlsSrv.URL
		c.noBackground = true
	})
	bg := context.Background()
	u, err := s.Store.CreateUser(bg, "dave", "dave-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(bg, "live", "hlsdemo", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.AddOrigin(bg, st.ID, "origin-hls", time.Now(), true, nil); err != nil {
		t.Fatal(err)
	}
	playlist := hlsSrv.URL + "/index.m3u8"
	task := &models.Task{StreamID: st.ID, Type: models.TypeHLS, DesiredState: models.DesiredRunning, State: models.TaskRunning,
		NodeName: "worker-1", Description: models.TaskDescription{Command: "ffmpeg", Outputs: []string{playlist}}}
	if _, _, err := s.Store.CreateCompiledTask(bg, task); err != nil {
		t.Fatal(err)
	}
	uiWaitUntil(t, 20*time.Second, "ffmpeg writes the HLS playlist", func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
		return err == nil && strings.Count(string(b), ".ts") >= 2, err
	})

	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "dave", "dave-password")
	b.do(t, "open stream", 20*time.Second,
		chromedp.Navigate(fmt.Sprintf("%s/streams/%d", s.URL, st.ID)),
		chromedp.WaitVisible(uiCSS(`video#preview`)),
	)
	ctxW, cancelW := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancelW()
	if err := chromedp.Do(ctxW, chromedp.WaitVisible(uiCSS(`video#preview[data-state="playing"]`))); err != nil {
		status, _ := chromedp.Run(b.ctx, chromedp.Text(uiCSS("#preview-status")))
		hlsAttr, _ := chromedp.Run(b.ctx, chromedp.AttributeValue(uiCSS("video#preview"), "data-hls"))
		b.fail(t, fmt.Sprintf("preview plays HLS (status %q, data-hls %q)", status, hlsAttr.Value), err)
	}
	if src := uiGet(t, b, "data-hls", 5*time.Second, chromedp.AttributeValue(uiCSS("video#preview"), "data-hls")); src.Value != playlist {
		t.Fatalf("data-hls = %q, want %q", src.Value, playlist)
	}
	if !uiGet(t, b, "hls.js loaded", 5*time.Second, chromedp.Evaluate[bool](`typeof window.Hls === "function" && typeof window.mpegts === "undefined"`)) {
		t.Fatal("the preview did not play through hls.js (or fell back to HTTP-FLV)")
	}
	previewAdvances(t, b)
	b.screenshot(t, "stream-preview-hls")
	for _, e := range b.errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Uncaught") {
			t.Errorf("browser console: %s", e)
		}
	}
}

// TestUIPortierRun drives the UI of a real `portier run` process: the first
// admin signs in, creates a stream, publishes with ffmpeg to the URL the page
// shows, sees it turn live and plays the preview from the same address, and
// adds a restream that the embedded concierge runs.
func TestUIPortierRun(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t)
	base := "http://" + a.http
	b := newUIBrowser(t)
	uiSignIn(t, b, base, "admin", "e2e-admin-password")

	b.do(t, "create stream", 20*time.Second,
		chromedp.Navigate(base+"/streams"),
		chromedp.WaitVisible(uiCSS("#stream-name")),
		chromedp.SendKeys(uiCSS("#stream-name"), "runui"),
		chromedp.Click(uiCSS("#create-stream")),
		chromedp.WaitVisible(uiCSS("#reveal-key")),
		chromedp.Click(uiCSS("#reveal-key")),
		chromedp.WaitVisible(uiCSS("#ingest-url")),
	)
	streamPage := uiGet(t, b, "location", 5*time.Second, chromedp.Location())
	streamPage = strings.SplitN(streamPage, "?", 2)[0]
	ingest := uiGet(t, b, "read ingest URL", 5*time.Second, chromedp.Text(uiCSS("#ingest-url")))
	_, rtmpPort, _ := net.SplitHostPort(a.rtmp)
	if !strings.HasPrefix(ingest, "rtmp://127.0.0.1:"+rtmpPort+"/live/runui?key=") {
		t.Fatalf("ingest URL %q does not point at the relay on port %s", ingest, rtmpPort)
	}

	b.do(t, "open list", 20*time.Second,
		chromedp.Navigate(base+"/streams"),
		chromedp.WaitVisible(uiCSS(`tr[data-stream="runui"][data-live="false"]`)),
	)
	uiGet(t, b, "mark the page", 5*time.Second, chromedp.Evaluate[bool](`window.__noReload = true`))
	var id uint
	if _, err := fmt.Sscanf(streamPage[strings.LastIndex(streamPage, "/")+1:], "%d", &id); err != nil {
		t.Fatalf("stream id from %s: %v", streamPage, err)
	}
	pub := peers.Publish(t, context.Background(), ingest, peers.PublishOpts{})
	started := time.Now()
	uiWaitUntil(t, 15*time.Second, "the API reports the stream live", func() (bool, error) {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		return a.live(t, id), nil
	})
	liveAt := time.Now()
	b.do(t, "list shows live within 5 s without reload", 5*time.Second,
		chromedp.WaitVisible(uiCSS(`tr[data-stream="runui"][data-live="true"]`)))
	if !uiGet(t, b, "check no reload", 5*time.Second, chromedp.Evaluate[bool](`window.__noReload === true`)) {
		t.Fatal("the page was reloaded")
	}
	t.Logf("live on the list %v after the API, %v after ffmpeg started",
		time.Since(liveAt).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	b.do(t, "preview plays", 30*time.Second,
		chromedp.Navigate(streamPage),
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="playing"]`)),
	)
	previewAdvances(t, b)
	b.screenshot(t, "run-preview")
	// The operator's preview is not a viewer: its HTTP-FLV play carries the
	// system's proof. Heartbeats come every second; give them three.
	time.Sleep(3 * time.Second) // three heartbeats, so a counted preview would show
	var stats apiStreamStats
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d", id), nil, &stats); code != 200 || stats.Stats == nil || stats.Stats.Viewers != 0 {
		t.Errorf("viewers while only the preview plays: HTTP %d %+v, want 0", code, stats.Stats)
	}
	// Stop stops it; Play starts it again.
	b.do(t, "preview stops", 10*time.Second,
		chromedp.Click(uiCSS("#preview-stop")),
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="stopped"]`)),
	)
	b.do(t, "preview plays again", 30*time.Second,
		chromedp.Click(uiCSS("#preview-start")),
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="playing"]`)),
	)
	// The stream ends: the preview says so (no frozen "playing"), and
	// resumes by itself when the stream is back.
	pub.Stop()
	b.do(t, "preview shows the stream ended", 20*time.Second,
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="ended"]`)))
	if st := uiGet(t, b, "preview status", 5*time.Second, chromedp.Text(uiCSS("#preview-status"))); !strings.Contains(st, "stream ended") {
		t.Errorf("preview status after the stream ended: %q", st)
	}
	pub = peers.Publish(t, context.Background(), ingest, peers.PublishOpts{})
	b.do(t, "preview resumes", 40*time.Second,
		chromedp.WaitVisible(uiCSS(`video#preview[data-state="playing"]`)))
	previewAdvances(t, b)

	// A restream to a second stream on the same relay, run by the embedded concierge.
	var target apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "runui-copy"}, &target); code != http.StatusCreated {
		t.Fatalf("create target stream: HTTP %d", code)
	}
	b.do(t, "add restream", 20*time.Second,
		chromedp.Navigate(streamPage+"/configs/new?type=restream"),
		chromedp.WaitVisible(uiCSS("#cfg-target")),
		chromedp.SendKeys(uiCSS("#cfg-name"), "copy"),
		chromedp.SendKeys(uiCSS("#cfg-target"), "rtmp://127.0.0.1:"+rtmpPort+"/live"),
		chromedp.SendKeys(uiCSS("#cfg-key"), "runui-copy?key="+target.Key),
		chromedp.Click(uiCSS("#save-config")),
		chromedp.WaitVisible(uiCSS(`#stream-tasks tr[data-config="copy"]`)),
	)
	b.do(t, "task reaches running", 60*time.Second,
		chromedp.WaitVisible(uiCSS(`#stream-tasks tr[data-config="copy"][data-state="running"]`)))
	uiWaitUntil(t, 30*time.Second, "the restream target goes live", func() (bool, error) {
		return a.live(t, target.ID), nil
	})
	b.screenshot(t, "run-tasks")
	pub.Stop()
	for _, e := range b.errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Uncaught") {
			t.Errorf("browser console: %s", e)
		}
	}
}
