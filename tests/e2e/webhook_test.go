package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/webhook"
	"github.com/portier/portier/tests/peers"
)

// hookReceiver is a webhook endpoint: it verifies every delivery's
// signature with webhook.Verify, as a customer's receiver would, and keeps
// the verified events (and their raw bodies).
type hookReceiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	secret string
	events []webhook.Event
	bodies []string
	bad    []string // deliveries that did not verify
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify(r.secret, req.Header, body, time.Now(), 0); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.Type != req.Header.Get(webhook.HeaderEvent) {
			r.bad = append(r.bad, "body: "+string(body))
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.events = append(r.events, ev)
		r.bodies = append(r.bodies, string(body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

// count is how many verified events of typ arrived.
func (r *hookReceiver) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// data is the data of the first event of typ, decoded into v.
func (r *hookReceiver) data(t *testing.T, typ string, v any) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range r.events {
		if ev.Type == typ {
			var raw struct{ Data json.RawMessage }
			if err := json.Unmarshal([]byte(r.bodies[i]), &raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw.Data, v); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s event", typ)
}

// TestWebhookDeliveries: an admin creates a webhook endpoint through the
// REST API for application "live"; a real ffmpeg publish delivers a
// signed stream.live, its end a stream.offline, publishes with a wrong key
// (and with a made-up key as the name) a publish.refused each that never
// holds the key. In Chromium the admin's webhook page lists the deliveries
// with response code 200, and its "Send test" button delivers webhook.test.
func TestWebhookDeliveries(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	recv := newHookReceiver(t)
	s := startUIStack(t, func(c *uiStackConfig) {
		// The receiver is on loopback, which webhook URLs need allowed.
		c.params.Security.TaskURLs.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	ctx := context.Background()
	admin, err := s.Store.CreateUser(ctx, "hana", "hana-password", models.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Store.CreateToken(ctx, admin.ID, "hooks", []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(ctx, "live", "hooked", admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path string, body any) (int, []byte) {
		t.Helper()
		return apiCall(t, s.URL, tok, method, path, body)
	}

	// A URL the policy refuses is a field error.
	if code, body := api("POST", "/webhooks", map[string]any{"url": "http://169.254.169.254/latest"}); code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"url"`) {
		t.Errorf("metadata URL: %d %s, want 400 on url", code, body)
	}
	code, body := api("POST", "/webhooks", map[string]any{"url": recv.srv.URL + "/receiver", "application_id": st.ApplicationID,
		"events": []string{"stream.live", "stream.offline", "publish.refused"}, "description": "e2e"})
	if code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	var ep struct {
		ID      int64  `json:"id"`
		Secret  string `json:"secret"`
		Enabled bool   `json:"enabled"`
	}
	if err := json.Unmarshal(body, &ep); err != nil || ep.Secret == "" || !ep.Enabled {
		t.Fatalf("create webhook answer %s (%v): want an enabled endpoint with its secret", body, err)
	}
	recv.setSecret(ep.Secret)
	id := strconv.FormatInt(ep.ID, 10)
	if code, body := api("GET", "/webhooks/"+id, nil); code != http.StatusOK || strings.Contains(string(body), ep.Secret) {
		t.Errorf("GET webhook: %d %s: want 200 without the secret", code, body)
	}

	rtmp := "rtmp://" + s.Relay.RTMPAddr().String() + "/live/"
	pub := peers.Publish(t, ctx, rtmp+"hooked?key="+st.PublishKey, peers.PublishOpts{})
	uiWaitUntil(t, 30*time.Second, "stream.live delivered", func() (bool, error) { return recv.count(webhook.StreamLive) == 1, nil })
	var live webhook.StreamData
	recv.data(t, webhook.StreamLive, &live)
	if live.StreamID != st.ID || live.App != "live" || live.Name != "hooked" || live.Node == "" {
		t.Errorf("stream.live data %+v", live)
	}
	pub.Stop()
	uiWaitUntil(t, 30*time.Second, "stream.offline delivered", func() (bool, error) { return recv.count(webhook.StreamOffline) == 1, nil })

	// Refused publishes: a wrong key, and a made-up key as the stream name.
	wrongKey := "wrong-key-0123456789abcdef"
	fakeKeyName := "sk0123456789abcdefghijklmnop"
	for _, u := range []string{rtmp + "hooked?key=" + wrongKey, rtmp + fakeKeyName} {
		p := peers.Publish(t, ctx, u, peers.PublishOpts{Duration: 5 * time.Second})
		if _, ok := p.WaitTimeout(20 * time.Second); !ok {
			p.Stop()
		}
	}
	uiWaitUntil(t, 30*time.Second, "publish.refused delivered twice", func() (bool, error) { return recv.count(webhook.PublishRefused) == 2, nil })
	recv.mu.Lock()
	for _, b := range recv.bodies {
		if strings.Contains(b, wrongKey) || strings.Contains(b, fakeKeyName) || strings.Contains(b, st.PublishKey) {
			t.Errorf("a delivery holds a key: %s", b)
		}
	}
	if len(recv.bad) > 0 {
		t.Errorf("deliveries that did not verify: %q", recv.bad)
	}
	recv.mu.Unlock()
	var refused webhook.PublishRefusedData
	recv.data(t, webhook.PublishRefused, &refused)
	if refused.Code != "wrong_key" || refused.StreamID != st.ID || refused.Name != "hooked" {
		t.Errorf("publish.refused data %+v, want wrong_key for live/hooked", refused)
	}

	code, body = api("GET", "/webhooks/"+id+"/deliveries", nil)
	if code != http.StatusOK || strings.Count(string(body), `"status_code":200`) < 4 {
		t.Errorf("deliveries: %d %s: want 4 answered 200", code, body)
	}

	// The admin page: the delivery log, and the test button.
	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "hana", "hana-password")
	card := `section.webhook[data-webhook="` + id + `"] `
	b.do(t, "webhooks page", 20*time.Second, chromedp.Navigate(s.URL+"/admin/webhooks"),
		chromedp.WaitVisible(uiCSS(card+`table.webhook-deliveries tr[data-event="stream.offline"]`)))
	for _, ev := range []string{webhook.StreamLive, webhook.StreamOffline, webhook.PublishRefused} {
		got := strings.TrimSpace(uiGet(t, b, "code of "+ev, 5*time.Second,
			chromedp.Text(uiCSS(card+`tr[data-event="`+ev+`"] td.code`))))
		if got != "200" {
			t.Errorf("%s response code in the log %q, want 200", ev, got)
		}
	}
	if !strings.Contains(uiGet(t, b, "nav", 5*time.Second, chromedp.Text(uiCSS(`nav a[aria-current="page"]`))), "Webhooks") {
		t.Error("the nav does not mark Webhooks")
	}
	b.do(t, "send test", 20*time.Second, chromedp.Click(uiCSS(card+`button.webhook-test`)),
		chromedp.WaitVisible(uiCSS(card+`tr[data-event="webhook.test"] td.code`)))
	if got := strings.TrimSpace(uiGet(t, b, "test code", 5*time.Second, chromedp.Text(uiCSS(card+`tr[data-event="webhook.test"] td.code`)))); got != "200" {
		t.Errorf("webhook.test response code %q, want 200", got)
	}
	if n := recv.count(webhook.Test); n != 1 {
		t.Errorf("the receiver got %d webhook.test events, want 1", n)
	}

	// The create form: a refused URL is a field error; a good one shows
	// its secret once.
	b.do(t, "create refused", 20*time.Second, chromedp.Navigate(s.URL+"/admin/webhooks"),
		chromedp.SendKeys(uiCSS("#webhook-url"), "http://169.254.169.254/latest"),
		chromedp.Click(uiCSS("#create-webhook")),
		chromedp.WaitVisible(uiCSS("#webhook-url-error")))
	b.do(t, "create", 20*time.Second,
		chromedp.SetValue(uiCSS("#webhook-url"), recv.srv.URL+"/second"),
		chromedp.Click(uiCSS(`input[name="events"][value="node.lost"]`)),
		chromedp.Click(uiCSS("#create-webhook")),
		chromedp.WaitVisible(uiCSS("#new-secret")))
	secret := strings.TrimSpace(uiGet(t, b, "secret", 5*time.Second, chromedp.Text(uiCSS("#new-secret"))))
	// Every event is offered, recording.finished too, each with a hint.
	hint := uiGet(t, b, "recording.finished choice", 5*time.Second,
		chromedp.Text(uiCSS(`label:has(input[name="events"][value="recording.finished"]) .webhook-event-hint`)))
	if strings.TrimSpace(hint) != "a record task finished a file" {
		t.Errorf("recording.finished hint %q", hint)
	}
	eps, err := s.Store.ListWebhookEndpoints(ctx)
	if err != nil || len(eps) != 2 || eps[1].Secret != secret || eps[1].ApplicationID != nil || len(eps[1].Events) != 1 {
		t.Errorf("after the form: %d endpoints (%v); want a second, global one for node.lost with the secret shown", len(eps), err)
	}
}
