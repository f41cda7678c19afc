package live

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/webhook"
)

type recEmitter struct {
	mu  sync.Mutex
	evs []webhook.Event
}

func (r *recEmitter) Emit(_ context.Context, ev webhook.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

func (r *recEmitter) of(typ string) []webhook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []webhook.Event
	for _, ev := range r.evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

type noSched struct{}

func (noSched) Kick()               {}
func (noSched) KickPlacement()      {}
func (noSched) DeathsHeldOff() bool { return false }

// TestWebhookEvents: a publish going live emits stream.live once (not
// again for a second origin), its end stream.offline; refused publishes
// emit publish.refused at most once a minute per app, name, address and
// code, and never with the key that was tried.
func TestWebhookEvents(t *testing.T) {
	st := modelstest.SQLite(t)
	ctx := context.Background()
	u, err := st.CreateUser(ctx, "ann", "ann-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.CreateStream(ctx, "live", "cam", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rec := &recEmitter{}
	l := New(Params{Store: st, Sched: noSched{}, Now: func() time.Time { return now }, Webhooks: rec})

	for _, node := range []string{"o1", "o2"} {
		if d := l.AuthorizePublish(ctx, Request{Node: node, App: "live", Name: "cam", Query: "key=" + s.PublishKey, Addr: "10.0.0.1"}); !d.Allow {
			t.Fatalf("publish on %s refused: %+v", node, d)
		}
	}
	if got := rec.of(webhook.StreamLive); len(got) != 1 || got[0].Application != "live" {
		t.Fatalf("stream.live events %+v, want one for application live", got)
	} else if d := got[0].Data.(webhook.StreamData); d.StreamID != s.ID || d.Name != "cam" || d.Node != "o1" || d.PublishID == 0 {
		t.Errorf("stream.live data %+v", d)
	}
	for _, node := range []string{"o1", "o2"} {
		if err := l.PublishDone(ctx, Request{Node: node, App: "live", Name: "cam"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.of(webhook.StreamOffline); len(got) != 1 {
		t.Fatalf("stream.offline events %+v, want one (after the last origin)", got)
	}

	wrong, keyName := "wrong-key-0123456789", "sk_0123456789abcdefghij"
	for range 3 {
		l.AuthorizePublish(ctx, Request{Node: "o1", App: "live", Name: "cam", Query: "key=" + wrong, Addr: "10.0.0.2"})
		l.AuthorizePublish(ctx, Request{Node: "o1", App: "live", Name: keyName, Addr: "10.0.0.2"})
	}
	l.AuthorizePublish(ctx, Request{Node: "o1", App: "live", Name: "cam", Query: "key=" + wrong, Addr: "10.0.0.3"})
	got := rec.of(webhook.PublishRefused)
	if len(got) != 3 {
		t.Fatalf("%d publish.refused events within a minute, want 3 (wrong key from 2 addresses, unknown stream)", len(got))
	}
	for _, ev := range got {
		d := ev.Data.(webhook.PublishRefusedData)
		if strings.Contains(d.Name+d.Reason, wrong) || strings.Contains(d.Name+d.Reason, keyName) || strings.Contains(d.Reason, s.PublishKey) {
			t.Errorf("publish.refused holds a key: %+v", d)
		}
	}
	if d := got[1].Data.(webhook.PublishRefusedData); d.Code != CodeUnknownStream || d.Name != Redact(keyName) {
		t.Errorf("unknown stream refusal %+v", d)
	}
	now = now.Add(time.Minute)
	l.AuthorizePublish(ctx, Request{Node: "o1", App: "live", Name: "cam", Query: "key=" + wrong, Addr: "10.0.0.2"})
	if n := len(rec.of(webhook.PublishRefused)); n != 4 {
		t.Errorf("%d publish.refused events a minute later, want 4", n)
	}

	// A node that stops heartbeating is lost once, at the reaper's next pass.
	if _, err := st.RegisterNode(ctx, models.Node{Name: "edge-9", Role: models.NodeRoleEdge}, now); err != nil {
		t.Fatal(err)
	}
	now = now.Add(l.AliveWindow() + time.Second)
	for range 2 {
		if err := l.Reap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if lost := rec.of(webhook.NodeLost); len(lost) != 1 || lost[0].Application != "" || lost[0].Data.(webhook.NodeData).Name != "edge-9" {
		t.Errorf("node.lost events %+v, want one for edge-9", lost)
	}
}

// A spray of new names fills the refusal table; while it is full no new
// refusal is emitted, and once its entries expire new ones are again.
func TestRefusalsBounded(t *testing.T) {
	var r refusals
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := range maxRefusalKeys {
		if !r.allow(fmt.Sprint("spray", i), t0) {
			t.Fatalf("refusal %d not allowed below the bound", i)
		}
	}
	if r.allow("one-more", t0.Add(time.Second)) {
		t.Fatal("a new refusal was let through a full table")
	}
	if !r.allow("later", t0.Add(refusedEvery+time.Second)) || len(r.last) != 1 {
		t.Fatalf("after expiry: %d entries", len(r.last))
	}
}

// gateSched is a scheduler whose death gate the test opens and closes.
type gateSched struct {
	noSched
	held bool
}

func (g *gateSched) DeathsHeldOff() bool { return g.held }

// TestReapHeldOff: while the scheduler's death gate holds (after a
// database outage), the reaper declares nothing dead: the origin of a node
// whose heartbeat is older than the alive window stays, no node.lost, no
// stream.offline. Once the gate opens, the next pass clears it.
func TestReapHeldOff(t *testing.T) {
	st := modelstest.SQLite(t)
	ctx := context.Background()
	u, err := st.CreateUser(ctx, "ann", "ann-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.CreateStream(ctx, "live", "cam", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rec := &recEmitter{}
	gate := &gateSched{held: true}
	l := New(Params{Store: st, Sched: gate, Now: func() time.Time { return now }, Webhooks: rec})
	if _, err := st.RegisterNode(ctx, models.Node{Name: "o1", Role: models.NodeRoleOrigin}, now); err != nil {
		t.Fatal(err)
	}
	if d := l.AuthorizePublish(ctx, Request{Node: "o1", App: "live", Name: "cam", Query: "key=" + s.PublishKey, Addr: "10.0.0.1"}); !d.Allow {
		t.Fatalf("publish refused: %+v", d)
	}
	now = now.Add(l.AliveWindow() + time.Second)
	if err := l.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if os, err := st.StreamOrigins(ctx, s.ID); err != nil || len(os) != 1 {
		t.Fatalf("origins while the gate holds: %+v %v, want o1 kept", os, err)
	}
	if n, m := len(rec.of(webhook.NodeLost)), len(rec.of(webhook.StreamOffline)); n+m != 0 {
		t.Fatalf("while the gate holds: %d node.lost, %d stream.offline events, want none", n, m)
	}
	gate.held = false
	if err := l.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if os, err := st.StreamOrigins(ctx, s.ID); err != nil || len(os) != 0 {
		t.Fatalf("origins after the gate opened: %+v %v, want none", os, err)
	}
	if n, m := len(rec.of(webhook.NodeLost)), len(rec.of(webhook.StreamOffline)); n != 1 || m != 1 {
		t.Errorf("after the gate opened: %d node.lost, %d stream.offline events, want 1 and 1", n, m)
	}
}
