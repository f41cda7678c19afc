// Package webhook delivers the control plane's events (a stream went live
// or offline, a publish was refused, a task failed or recovered, a node was
// lost, a recording finished) to the HTTP endpoints operators configure,
// globally or per application (models.WebhookEndpoint).
//
// A delivery is a POST of the Event as JSON with these headers:
//
//	Content-Type: application/json
//	Portier-Event: stream.live
//	Portier-Event-Id: evt_3f0c…           (the same on every attempt)
//	Portier-Delivery-Attempt: 1
//	Portier-Timestamp: 1764770000         (Unix seconds, when signed)
//	Portier-Signature: v1=5d41402abc4b…   (hex HMAC-SHA256)
//
// The signature is the HMAC-SHA256, keyed with the endpoint's secret, of
// the timestamp header's value, a '.', and the raw body:
//
//	v1=hex(HMAC_SHA256(secret, "1764770000" + "." + body))
//
// A receiver verifies a delivery by computing the same over the body as
// received (before parsing it), comparing in constant time, and refusing a
// timestamp more than a few minutes from its clock (replays); Verify does
// exactly that. It answers 2xx to acknowledge. 5xx, 408, 429 and network
// errors are retried with exponential backoff (Params.BackoffMin doubling
// up to BackoffMax, Params.MaxAttempts attempts in all); other answers,
// redirects included (they are not followed), end the delivery. Every
// attempt is logged in the store (models.WebhookDelivery: event, attempt,
// response code, error, duration), pruned to the newest
// Params.KeepDeliveries per endpoint and to Params.KeepFor.
//
// The control plane itself makes these requests, so webhook URLs are held
// to the rules of task URLs (models.TaskURLPolicy: no link-local or cloud
// metadata address, no loopback unless allowed, no internal paths), when
// an endpoint is saved and again for every address a delivery connects to,
// after DNS.
package webhook

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portier/portier/models"
)

// Store is what the dispatcher needs of the store.
type Store interface {
	WebhookEndpointsFor(ctx context.Context, app, typ string) ([]models.WebhookEndpoint, error)
	WebhookEndpoint(ctx context.Context, id int64) (*models.WebhookEndpoint, error)
	AddWebhookDelivery(ctx context.Context, d *models.WebhookDelivery) error
	PruneWebhookDeliveries(ctx context.Context, keepPerEndpoint int, before time.Time) (int64, error)
	CheckWebhookURL(raw string) (*url.URL, error)
	CheckWebhookAddr(scheme string, a netip.Addr) error
}

var _ Store = (*models.Store)(nil)

// Params configures a Dispatcher. Zero fields take the defaults in brackets.
type Params struct {
	Store  Store
	Logger *slog.Logger
	// MaxAttempts bounds the attempts of one delivery [6].
	MaxAttempts int
	// BackoffMin is the wait after the first failed attempt, doubling after
	// each next one up to BackoffMax [5s, 10m]; each wait gets up to a
	// fifth more at random, so endpoints that failed together do not
	// retry together.
	BackoffMin, BackoffMax time.Duration
	// Timeout bounds one attempt, connection and answer [10s].
	Timeout time.Duration
	// Workers is how many deliveries run at once [4].
	Workers int
	// QueueSize bounds the events waiting for their endpoints to be looked
	// up [1000], MaxPending the deliveries waiting for an attempt
	// (retries included) [10000]; beyond them events are dropped (logged).
	QueueSize, MaxPending int
	// KeepDeliveries is how many log rows each endpoint keeps [500],
	// KeepFor how long [30 days]; the log is pruned every PruneEvery
	// attempts [100] and at Start.
	KeepDeliveries int
	KeepFor        time.Duration
	PruneEvery     int
	// Now is the clock of timestamps and the log [time.Now].
	Now func() time.Time
}

// Errors of Emit and SendTest.
var (
	ErrClosed    = errors.New("webhook dispatcher closed")
	ErrQueueFull = errors.New("webhook queue full: event dropped")
)

// Dispatcher delivers events. Concurrency: one goroutine (loop) owns the
// deliveries waiting for an attempt (a heap by due time); it hands due
// ones to the workers over a channel and takes back, over another, those
// to retry. Emit only puts events in a buffered channel. No lock is held
// across I/O; Close cancels everything and waits for every goroutine.
type Dispatcher struct {
	p      Params
	log    *slog.Logger
	client *http.Client
	tr     *http.Transport

	events  chan Event
	work    chan *delivery
	retry   chan *delivery
	pending atomic.Int64 // deliveries not finished (waiting, in flight)
	dropped atomic.Int64
	logged  atomic.Int64 // attempts logged (for pruning)

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

// delivery is one event on its way to one endpoint.
type delivery struct {
	ep      models.WebhookEndpoint
	ev      Event
	body    []byte
	attempt int // attempts made
	due     time.Time
}

// New builds a dispatcher; Start starts it.
func New(p Params) *Dispatcher {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = 5 * time.Second
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = 10 * time.Minute
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Second
	}
	if p.Workers <= 0 {
		p.Workers = 4
	}
	if p.QueueSize <= 0 {
		p.QueueSize = 1000
	}
	if p.MaxPending <= 0 {
		p.MaxPending = 10000
	}
	if p.KeepDeliveries <= 0 {
		p.KeepDeliveries = 500
	}
	if p.KeepFor <= 0 {
		p.KeepFor = 30 * 24 * time.Hour
	}
	if p.PruneEvery <= 0 {
		p.PruneEvery = 100
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	d := &Dispatcher{p: p, log: p.Logger.With("component", "webhook"),
		events: make(chan Event, p.QueueSize), work: make(chan *delivery), retry: make(chan *delivery)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	// Every address a delivery connects to passes the URL policy after
	// DNS; no proxy from the environment (it would be the address
	// checked), no redirects (their target was never checked).
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("webhook: dial %s: not an IP address", address)
		}
		return p.Store.CheckWebhookAddr("https", a)
	}}
	d.tr = &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, ForceAttemptHTTP2: true}
	d.client = &http.Client{Transport: d.tr, Timeout: p.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return d
}

// Start starts the dispatcher's goroutines (once).
func (d *Dispatcher) Start() {
	d.startOnce.Do(func() {
		d.wg.Add(1 + d.p.Workers)
		go func() { defer d.wg.Done(); d.loop() }()
		for range d.p.Workers {
			go func() { defer d.wg.Done(); d.worker() }()
		}
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.prune() }()
	})
}

// Close stops the dispatcher and waits for its goroutines; deliveries not
// made yet are dropped (and logged as a count). Idempotent.
func (d *Dispatcher) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		d.tr.CloseIdleConnections()
		if n := d.pending.Load(); n > 0 {
			d.log.Warn("webhook deliveries dropped at shutdown", "deliveries", n)
		}
	})
	return nil
}

// Pending is the number of deliveries not finished: waiting for an
// attempt (a retry included) or being attempted.
func (d *Dispatcher) Pending() int { return int(d.pending.Load()) }

// Emit queues ev for every enabled endpoint that wants it. It never waits:
// when the queue is full the event is dropped (ErrQueueFull, logged), so a
// slow endpoint never holds up the control plane. Emit fills ev's ID and
// Time when they are empty.
func (d *Dispatcher) Emit(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ev.Type == "" {
		return errors.New("webhook: event without a type")
	}
	if d.ctx.Err() != nil {
		return ErrClosed
	}
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = d.p.Now()
	}
	ev.Time = ev.Time.UTC()
	select {
	case d.events <- ev:
		return nil
	default:
		if n := d.dropped.Add(1); n == 1 || n%100 == 0 {
			d.log.Warn("webhook queue full: events dropped", "event", ev.Type, "dropped", n)
		}
		return ErrQueueFull
	}
}

// SendTest makes one delivery of a test event (webhook.test) to endpoint
// id now, enabled or not, and answers its log row: the response code (0
// when none came), error and duration. It does not retry.
func (d *Dispatcher) SendTest(ctx context.Context, id int64) (models.WebhookDelivery, error) {
	if d.ctx.Err() != nil {
		return models.WebhookDelivery{}, ErrClosed
	}
	ep, err := d.p.Store.WebhookEndpoint(ctx, id)
	if err != nil {
		return models.WebhookDelivery{}, err
	}
	ev := Event{ID: newEventID(), Type: Test, Time: d.p.Now().UTC(),
		Data: TestData{EndpointID: id, Message: "A test delivery from Portier: verify its signature with the endpoint's secret."}}
	dl, err := newDelivery(*ep, ev)
	if err != nil {
		return models.WebhookDelivery{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel) // Close cuts it short
	defer stop()
	row, _ := d.attempt(ctx, dl)
	return row, nil
}

func newDelivery(ep models.WebhookEndpoint, ev Event) (*delivery, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode %s event: %w", ev.Type, err)
	}
	return &delivery{ep: ep, ev: ev, body: body}, nil
}

// loop owns the waiting deliveries (see Dispatcher).
func (d *Dispatcher) loop() {
	var waiting dueHeap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var work chan *delivery
		var next *delivery
		if len(waiting) > 0 {
			if wait := time.Until(waiting[0].due); wait <= 0 {
				work, next = d.work, waiting[0]
			} else {
				timer.Reset(wait)
			}
		}
		select {
		case <-d.ctx.Done():
			return
		case ev := <-d.events:
			for _, dl := range d.fanOut(ev) {
				if len(waiting) >= d.p.MaxPending {
					d.pending.Add(-1)
					if n := d.dropped.Add(1); n == 1 || n%100 == 0 {
						d.log.Warn("too many webhook deliveries waiting: dropped", "event", ev.Type, "endpoint", dl.ep.ID, "dropped", n)
					}
					continue
				}
				heap.Push(&waiting, dl)
			}
		case work <- next:
			heap.Pop(&waiting)
		case dl := <-d.retry:
			heap.Push(&waiting, dl)
		case <-timer.C:
		}
	}
}

// fanOut makes ev's deliveries, one per endpoint that wants it.
func (d *Dispatcher) fanOut(ev Event) []*delivery {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	eps, err := d.p.Store.WebhookEndpointsFor(ctx, ev.Application, ev.Type)
	if err != nil {
		if d.ctx.Err() == nil {
			d.log.Error("webhook endpoints: event dropped", "event", ev.Type, "id", ev.ID, "err", err)
		}
		return nil
	}
	out := make([]*delivery, 0, len(eps))
	now := time.Now()
	for _, ep := range eps {
		dl, err := newDelivery(ep, ev)
		if err != nil {
			d.log.Error("webhook event dropped", "event", ev.Type, "err", err)
			return nil
		}
		dl.due = now
		out = append(out, dl)
	}
	d.pending.Add(int64(len(out)))
	return out
}

func (d *Dispatcher) worker() {
	for {
		select {
		case <-d.ctx.Done():
			return
		case dl := <-d.work:
			if dl.attempt > 0 && !d.refresh(dl) {
				d.pending.Add(-1)
				continue
			}
			_, retry := d.attempt(d.ctx, dl)
			if d.ctx.Err() != nil {
				return // Close: counted as dropped
			}
			if !retry || dl.attempt >= d.p.MaxAttempts {
				if retry {
					d.log.Warn("webhook delivery failed for good", "endpoint", dl.ep.ID, "event", dl.ev.Type, "id", dl.ev.ID, "attempts", dl.attempt)
				}
				d.pending.Add(-1)
				continue
			}
			dl.due = time.Now().Add(d.backoff(dl.attempt))
			select {
			case d.retry <- dl:
			case <-d.ctx.Done():
				return
			}
		}
	}
}

// refresh reloads a retried delivery's endpoint: an endpoint deleted or
// disabled since ends it, a new URL or secret applies.
func (d *Dispatcher) refresh(dl *delivery) bool {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	ep, err := d.p.Store.WebhookEndpoint(ctx, dl.ep.ID)
	if err != nil || !ep.Enabled {
		return false
	}
	dl.ep = *ep
	return true
}

// backoff is the wait after attempt n (from 1) failed.
func (d *Dispatcher) backoff(n int) time.Duration {
	w := d.p.BackoffMin << min(n-1, 20)
	if w <= 0 || w > d.p.BackoffMax {
		w = d.p.BackoffMax
	}
	return w + rand.N(w/5+1)
}

// attempt makes one attempt of dl, logs it, and says whether a later
// attempt may succeed.
func (d *Dispatcher) attempt(ctx context.Context, dl *delivery) (row models.WebhookDelivery, retry bool) {
	dl.attempt++
	row = models.WebhookDelivery{EndpointID: dl.ep.ID, EventID: dl.ev.ID, Event: dl.ev.Type, Attempt: dl.attempt, CreatedAt: d.p.Now()}
	t0 := time.Now()
	code, err := d.post(ctx, dl)
	row.DurationMS = time.Since(t0).Milliseconds()
	row.StatusCode = code
	if err != nil {
		row.Error = err.Error()
	}
	switch {
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		retry = true
	case code == 0: // no answer: retry, unless the policy refused the URL
		retry = err != nil && !errors.Is(err, errRefused)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.p.Store.AddWebhookDelivery(lctx, &row); err != nil {
		d.log.Error("webhook delivery log", "endpoint", dl.ep.ID, "err", err)
	} else if n := d.logged.Add(1); n%int64(d.p.PruneEvery) == 0 {
		d.pruneNow(lctx)
	}
	return row, retry
}

// errRefused: the URL policy refuses the endpoint (no retry can help).
var errRefused = errors.New("refused by the URL policy")

// post sends one attempt; a non-2xx answer is an error with its code.
func (d *Dispatcher) post(ctx context.Context, dl *delivery) (int, error) {
	if _, err := d.p.Store.CheckWebhookURL(dl.ep.URL); err != nil {
		return 0, fmt.Errorf("%w: %v", errRefused, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.ep.URL, bytes.NewReader(dl.body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errRefused, err)
	}
	ts := d.p.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Portier-Webhook/1")
	req.Header.Set(HeaderEvent, dl.ev.Type)
	req.Header.Set(HeaderEventID, dl.ev.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(dl.attempt))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(dl.ep.Secret, ts, dl.body))
	resp, err := d.client.Do(req)
	if err != nil {
		var se *models.SpecError
		if errors.As(err, &se) {
			return 0, fmt.Errorf("%w: %v", errRefused, se)
		}
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode/100 == 3 {
		msg += " (redirects are not followed: give the final URL)"
	}
	if s := strings.TrimSpace(strings.ToValidUTF8(string(snippet[:min(len(snippet), 200)]), "")); s != "" {
		msg += ": " + s
	}
	return resp.StatusCode, errors.New(msg)
}

// prune bounds the delivery log at start and every hour.
func (d *Dispatcher) prune() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		d.pruneNow(d.ctx)
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dispatcher) pruneNow(ctx context.Context) {
	n, err := d.p.Store.PruneWebhookDeliveries(ctx, d.p.KeepDeliveries, d.p.Now().Add(-d.p.KeepFor))
	if err != nil && ctx.Err() == nil {
		d.log.Warn("prune webhook delivery log", "err", err)
	} else if n > 0 {
		d.log.Debug("webhook delivery log pruned", "rows", n)
	}
}

// dueHeap orders deliveries by due time.
type dueHeap []*delivery

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(*delivery)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
