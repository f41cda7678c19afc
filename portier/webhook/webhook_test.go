package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/webhook"
)

var admin = models.Actor{Name: "admin"}

// allowLoopback lets the store's webhooks reach httptest receivers on
// 127.0.0.1 (the built-in policy refuses loopback for http).
func allowLoopback(s *models.Store) {
	s.SetTaskURLPolicy(models.TaskURLPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
}

// receiver is a webhook endpoint that verifies every delivery's signature
// and answers the codes in answers, in order (then 200).
type receiver struct {
	*httptest.Server
	secret  string
	mu      sync.Mutex
	answers []int
	got     []received
}

type received struct {
	header http.Header
	event  webhook.Event
	data   map[string]any
	sigErr error
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		rc := received{header: req.Header.Clone(), sigErr: webhook.Verify(r.secret, req.Header, body, time.Now(), 0)}
		var raw struct {
			webhook.Event
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			rc.sigErr = errors.Join(rc.sigErr, err)
		}
		rc.event, rc.data = raw.Event, raw.Data
		r.got = append(r.got, rc)
		code := http.StatusOK
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		if code != http.StatusOK {
			http.Error(w, "receiver says no", code)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func start(t *testing.T, p webhook.Params) *webhook.Dispatcher {
	if p.BackoffMin == 0 {
		p.BackoffMin, p.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	d := webhook.New(p)
	d.Start()
	t.Cleanup(func() { d.Close() })
	return d
}

func endpoint(t *testing.T, s *models.Store, in models.WebhookEndpointInput) *models.WebhookEndpoint {
	t.Helper()
	ep, err := s.CreateWebhookEndpoint(context.Background(), in, admin)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestDeliverySignedRetriedAndLogged: a stream.live event reaches a global
// endpoint signed with its secret; the receiver's 500 is retried with the
// same event, its 200 ends the delivery, and both attempts are in the log.
func TestDeliverySignedRetriedAndLogged(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			allowLoopback(s)
			rcv := newReceiver(t, http.StatusInternalServerError)
			ep := endpoint(t, s, models.WebhookEndpointInput{URL: rcv.URL + "/hook", Enabled: true})
			rcv.secret = ep.Secret
			if !strings.HasPrefix(ep.Secret, "whsec_") {
				t.Fatalf("made secret %q", ep.Secret)
			}
			d := start(t, webhook.Params{Store: s})
			err := d.Emit(ctx, webhook.Event{Type: webhook.StreamLive, Application: "live",
				Data: webhook.StreamData{StreamID: 7, App: "live", Name: "show", Node: "origin-1", PublishID: 3}})
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, "two attempts and nothing pending", func() bool {
				return len(rcv.deliveries()) == 2 && d.Pending() == 0
			})
			got := rcv.deliveries()
			for i, g := range got {
				if g.sigErr != nil {
					t.Fatalf("attempt %d: signature: %v", i+1, g.sigErr)
				}
				if g.header.Get(webhook.HeaderAttempt) != []string{"1", "2"}[i] || g.header.Get(webhook.HeaderEvent) != "stream.live" ||
					g.header.Get(webhook.HeaderEventID) != got[0].event.ID || g.header.Get("Content-Type") != "application/json" {
					t.Fatalf("attempt %d headers %v", i+1, g.header)
				}
			}
			ev := got[1].event
			if ev.Type != "stream.live" || ev.Application != "live" || !strings.HasPrefix(ev.ID, "evt_") || time.Since(ev.Time) > time.Minute ||
				got[1].data["name"] != "show" || got[1].data["stream_id"] != float64(7) || got[1].data["node"] != "origin-1" {
				t.Fatalf("event %+v data %v", ev, got[1].data)
			}
			// A wrong secret, a changed body or an old timestamp fail.
			body, _ := json.Marshal(ev)
			h := http.Header{}
			now := time.Now()
			h.Set(webhook.HeaderTimestamp, "1")
			h.Set(webhook.HeaderSignature, webhook.Sign(ep.Secret, 1, body))
			if err := webhook.Verify(ep.Secret, h, body, now, 0); !errors.Is(err, webhook.ErrStale) {
				t.Fatalf("old timestamp: %v", err)
			}
			h.Set(webhook.HeaderTimestamp, "1")
			if err := webhook.Verify("whsec_other", h, body, time.Unix(1, 0), 0); !errors.Is(err, webhook.ErrBadSignature) {
				t.Fatalf("wrong secret: %v", err)
			}
			if err := webhook.Verify(ep.Secret, h, append(body, ' '), time.Unix(1, 0), 0); !errors.Is(err, webhook.ErrBadSignature) {
				t.Fatalf("changed body: %v", err)
			}

			rows, err := s.ListWebhookDeliveries(ctx, ep.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Fatalf("log rows %+v; want 2", rows)
			}
			first, second := rows[1], rows[0] // newest first
			if first.Attempt != 1 || first.StatusCode != 500 || !strings.Contains(first.Error, "HTTP 500: receiver says no") ||
				second.Attempt != 2 || second.StatusCode != 200 || second.Error != "" ||
				first.EventID != ev.ID || second.EventID != ev.ID || first.Event != "stream.live" || first.DurationMS < 0 || first.CreatedAt.IsZero() {
				t.Fatalf("log rows %+v", rows)
			}
		})
	}
}

// TestRoutingAndBoundedRetries: endpoints get only the events their
// application and filter select, disabled ones none; an endpoint that
// always fails gets MaxAttempts attempts and no more; a 4xx is not retried.
func TestRoutingAndBoundedRetries(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			allowLoopback(s)
			live, err := s.EnsureApplication(ctx, "live")
			if err != nil {
				t.Fatal(err)
			}
			other, err := s.EnsureApplication(ctx, "other")
			if err != nil {
				t.Fatal(err)
			}
			global := newReceiver(t)
			forLive := newReceiver(t, 500, 500, 500, 500, 500)
			forOther := newReceiver(t)
			onlyTasks := newReceiver(t, http.StatusGone)
			disabled := newReceiver(t)
			epG := endpoint(t, s, models.WebhookEndpointInput{URL: global.URL, Enabled: true})
			epL := endpoint(t, s, models.WebhookEndpointInput{URL: forLive.URL, Enabled: true, ApplicationID: &live.ID})
			endpoint(t, s, models.WebhookEndpointInput{URL: forOther.URL, Enabled: true, ApplicationID: &other.ID})
			epT := endpoint(t, s, models.WebhookEndpointInput{URL: onlyTasks.URL, Enabled: true, Events: []string{webhook.TaskFailed}})
			endpoint(t, s, models.WebhookEndpointInput{URL: disabled.URL, Enabled: false})
			global.secret, forLive.secret, onlyTasks.secret = epG.Secret, epL.Secret, epT.Secret

			d := start(t, webhook.Params{Store: s, MaxAttempts: 3})
			for _, ev := range []webhook.Event{
				{Type: webhook.StreamOffline, Application: "live", Data: webhook.StreamData{StreamID: 1, App: "live", Name: "a"}},
				{Type: webhook.TaskFailed, Application: "other", Data: webhook.TaskData{TaskID: 9, Error: "target refused connection"}},
				{Type: webhook.NodeLost, Data: webhook.NodeData{Name: "edge-1", Role: "edge"}},
			} {
				if err := d.Emit(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			testutil.Eventually(t, 10*time.Second, "every delivery finished", func() bool {
				return d.Pending() == 0 && len(global.deliveries()) == 3 && len(forLive.deliveries()) == 3
			})
			types := func(r *receiver) (out []string) {
				for _, g := range r.deliveries() {
					if g.sigErr != nil && r.secret != "" {
						t.Errorf("signature: %v", g.sigErr)
					}
					out = append(out, g.event.Type)
				}
				return out
			}
			if got := strings.Join(types(global), ","); !strings.Contains(got, "stream.offline") || !strings.Contains(got, "task.failed") || !strings.Contains(got, "node.lost") {
				t.Errorf("global endpoint got %s; want every event", got)
			}
			if got := strings.Join(types(forLive), ","); got != "stream.offline,stream.offline,stream.offline" {
				t.Errorf("live's endpoint (always 500, 3 attempts) got %s", got)
			}
			if got := strings.Join(types(forOther), ","); got != "task.failed" {
				t.Errorf("other's endpoint got %s", got)
			}
			if got := strings.Join(types(onlyTasks), ","); got != "task.failed" {
				t.Errorf("task.failed endpoint (answers 410, not retried) got %s", got)
			}
			if n := len(disabled.deliveries()); n != 0 {
				t.Errorf("disabled endpoint got %d deliveries", n)
			}
			rows, _ := s.ListWebhookDeliveries(ctx, epL.ID, 0)
			if len(rows) != 3 || rows[0].Attempt != 3 || rows[0].StatusCode != 500 {
				t.Errorf("live's log %+v; want attempts 1..3 with 500", rows)
			}
		})
	}
}

// TestSSRFRefused: URLs of link-local and metadata addresses, loopback
// (unless allowed) and internal paths are refused when saved, as task
// URLs are; an address refused after DNS is refused at dial time.
func TestSSRFRefused(t *testing.T) {
	s := modelstest.SQLite(t)
	ctx := context.Background()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/", "http://[fe80::1]/",
		"http://127.0.0.1:9/", "http://localhost/", "https://2852039166/", "http://example.com/internal/v1/nodes", "ftp://example.com/",
		"http://user:pw@example.com/"} {
		_, err := s.CreateWebhookEndpoint(ctx, models.WebhookEndpointInput{URL: u, Enabled: true}, admin)
		var se *models.SpecError
		if !errors.As(err, &se) || se.Field != "url" {
			t.Errorf("%s: err %v; want a url field error", u, err)
		}
	}
	if _, err := s.CreateWebhookEndpoint(ctx, models.WebhookEndpointInput{URL: "https://hooks.example.com/p", Events: []string{"stream.exploded"}}, admin); err == nil {
		t.Error("unknown event accepted")
	}
	// Saved while loopback was allowed; refused at delivery once it is not.
	allowLoopback(s)
	rcv := newReceiver(t)
	ep := endpoint(t, s, models.WebhookEndpointInput{URL: rcv.URL, Enabled: true})
	d := start(t, webhook.Params{Store: s})
	s.SetTaskURLPolicy(models.TaskURLPolicy{})
	row, err := d.SendTest(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.StatusCode != 0 || !strings.Contains(row.Error, "loopback") || len(rcv.deliveries()) != 0 {
		t.Fatalf("delivery to a refused address: %+v (receiver got %d)", row, len(rcv.deliveries()))
	}
	// The dial-time check: a URL whose host name passes (DNS names are
	// not resolved when saved) but resolves to a refused address.
	dd := start(t, webhook.Params{Store: dnsToLoopback{s}})
	row, err = dd.SendTest(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.StatusCode != 0 || !strings.Contains(row.Error, "host 127.0.0.1 is loopback") || len(rcv.deliveries()) != 0 {
		t.Fatalf("delivery to a name resolving to loopback: %+v (receiver got %d)", row, len(rcv.deliveries()))
	}
	if err := s.CheckWebhookAddr("https", netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Fatal("metadata address accepted at dial time")
	}
}

// dnsToLoopback is the store with every URL passing its check, as one
// naming a host would whose DNS points at a refused address: only the
// dial-time check (the store's, with the built-in policy) stands.
type dnsToLoopback struct{ *models.Store }

func (dnsToLoopback) CheckWebhookURL(raw string) (*url.URL, error) { return url.Parse(raw) }

// TestSendTest: the test-delivery button's call makes one signed
// webhook.test delivery, answers its result and logs it.
func TestSendTest(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			allowLoopback(s)
			rcv := newReceiver(t, http.StatusServiceUnavailable)
			ep := endpoint(t, s, models.WebhookEndpointInput{URL: rcv.URL, Enabled: false, Events: []string{webhook.NodeLost}})
			rcv.secret = ep.Secret
			d := start(t, webhook.Params{Store: s})
			row, err := d.SendTest(ctx, ep.ID)
			if err != nil || row.StatusCode != 503 || row.Event != "webhook.test" || row.Attempt != 1 {
				t.Fatalf("test delivery %+v, %v", row, err)
			}
			row, err = d.SendTest(ctx, ep.ID)
			if err != nil || row.StatusCode != 200 || row.Error != "" {
				t.Fatalf("test delivery %+v, %v", row, err)
			}
			got := rcv.deliveries()
			if len(got) != 2 || got[1].sigErr != nil || got[1].event.Type != "webhook.test" || got[1].data["endpoint_id"] != float64(ep.ID) {
				t.Fatalf("receiver got %+v", got)
			}
			if rows, _ := s.ListWebhookDeliveries(ctx, ep.ID, 0); len(rows) != 2 {
				t.Fatalf("log %+v", rows)
			}
			if _, err := d.SendTest(ctx, 99999); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("unknown endpoint: %v", err)
			}
			d.Close()
			if _, err := d.SendTest(ctx, ep.ID); !errors.Is(err, webhook.ErrClosed) {
				t.Fatalf("after Close: %v", err)
			}
			if err := d.Emit(ctx, webhook.Event{Type: webhook.NodeLost}); !errors.Is(err, webhook.ErrClosed) {
				t.Fatalf("Emit after Close: %v", err)
			}
		})
	}
}

// TestDeliveryLogBounded: the log keeps the newest rows per endpoint and
// none older than KeepFor; deleting an endpoint deletes its log.
func TestDeliveryLogBounded(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			allowLoopback(s)
			rcv := newReceiver(t)
			a := endpoint(t, s, models.WebhookEndpointInput{URL: rcv.URL + "/a", Enabled: true})
			b := endpoint(t, s, models.WebhookEndpointInput{URL: rcv.URL + "/b", Enabled: true})
			// An old row first: the newest rows by id are kept, and then
			// none older than KeepFor.
			if err := s.AddWebhookDelivery(ctx, &models.WebhookDelivery{EndpointID: a.ID, EventID: "evt_old", Event: "stream.live", Attempt: 1,
				CreatedAt: time.Now().Add(-48 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				for _, ep := range []int64{a.ID, b.ID} {
					if err := s.AddWebhookDelivery(ctx, &models.WebhookDelivery{EndpointID: ep, EventID: "evt_x", Event: "stream.live", Attempt: i + 1, StatusCode: 200}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The dispatcher prunes after every attempt here (PruneEvery 1).
			d := start(t, webhook.Params{Store: s, KeepDeliveries: 3, KeepFor: 24 * time.Hour, PruneEvery: 1})
			if _, err := d.SendTest(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			ra, _ := s.ListWebhookDeliveries(ctx, a.ID, 0)
			rb, _ := s.ListWebhookDeliveries(ctx, b.ID, 0)
			if len(ra) != 3 || len(rb) != 3 || rb[0].Event != "webhook.test" || ra[0].Attempt != 5 {
				t.Fatalf("after pruning: a %+v, b %+v; want the newest 3 of each", ra, rb)
			}
			for _, r := range ra {
				if r.EventID == "evt_old" {
					t.Fatalf("row older than KeepFor kept: %+v", r)
				}
			}
			// Age alone: a row older than KeepFor goes even when its
			// endpoint has few. (The dispatcher stops first: its own
			// pruning at Start must not take the row.)
			d.Close()
			if err := s.AddWebhookDelivery(ctx, &models.WebhookDelivery{EndpointID: b.ID, EventID: "evt_old2", Event: "stream.live", Attempt: 1,
				CreatedAt: time.Now().Add(-48 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if n, err := s.PruneWebhookDeliveries(ctx, 100, time.Now().Add(-24*time.Hour)); err != nil || n != 1 {
				t.Fatalf("prune by age: %d rows, %v; want the one old row", n, err)
			}
			if err := s.DeleteWebhookEndpoint(ctx, a.ID, admin); err != nil {
				t.Fatal(err)
			}
			if ra, _ := s.ListWebhookDeliveries(ctx, a.ID, 0); len(ra) != 0 {
				t.Fatalf("log of a deleted endpoint: %+v", ra)
			}
			evs, _, _ := s.ListAudit(ctx, models.AuditFilter{Object: "webhook/" + itoa(a.ID)})
			if len(evs) != 2 || evs[0].Action != "webhook.delete" || evs[1].Action != "webhook.create" || strings.Contains(string(evs[1].Details), a.Secret) {
				t.Fatalf("audit %+v", evs)
			}
		})
	}
}

// TestCloseCutsHangingDelivery: Close does not wait for a receiver that
// never answers; it cancels the attempt and returns with every goroutine
// gone (TestMain's goleak check).
func TestCloseCutsHangingDelivery(t *testing.T) {
	s := modelstest.SQLite(t)
	allowLoopback(s)
	in := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server sees the client go
		in <- struct{}{}
		<-r.Context().Done()
	}))
	defer hang.Close()
	endpoint(t, s, models.WebhookEndpointInput{URL: hang.URL, Enabled: true})
	d := webhook.New(webhook.Params{Store: s, Logger: slog.New(slog.DiscardHandler), Timeout: time.Minute})
	d.Start()
	if err := d.Emit(context.Background(), webhook.Event{Type: webhook.NodeLost}); err != nil {
		t.Fatal(err)
	}
	<-in
	t0 := time.Now()
	d.Close()
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("Close took %v with a hanging receiver", took)
	}
	if d.Pending() != 1 {
		t.Fatalf("pending %d after Close; want the cut delivery counted", d.Pending())
	}
}
