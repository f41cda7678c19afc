package live

import (
	"context"
	"sync"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/webhook"
)

// Emitter takes the events outgoing webhooks deliver
// (portier/webhook.Dispatcher). Emit must not wait: it is called on the
// publish path.
type Emitter interface {
	Emit(ctx context.Context, ev webhook.Event) error
}

// refusedEvery bounds publish.refused events: one per app, name, address
// and code in this window, so an encoder retrying a wrong key every second
// does not flood the endpoints.
const refusedEvery = time.Minute

// maxRefusalKeys bounds the refusals remembered at once.
const maxRefusalKeys = 10000

// refusals remembers when each refusal was last emitted. Its mutex is never
// held across I/O.
type refusals struct {
	mu    sync.Mutex
	last  map[string]time.Time
	swept time.Time
}

// allow reports whether the refusal k may be emitted at now. A full table
// forgets expired entries at most once a second (a spray of new names would
// otherwise scan it on every refused publish) and, while still full, lets no
// new refusal through: such a spray is not worth 10,000 events a minute.
func (r *refusals) allow(k string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = make(map[string]time.Time)
	}
	if t, ok := r.last[k]; ok && now.Sub(t) < refusedEvery {
		return false
	}
	if len(r.last) >= maxRefusalKeys {
		if now.Sub(r.swept) >= time.Second {
			r.swept = now
			for k, t := range r.last {
				if now.Sub(t) >= refusedEvery {
					delete(r.last, k)
				}
			}
		}
		if len(r.last) >= maxRefusalKeys {
			return false
		}
	}
	r.last[k] = now
	return true
}

// emit hands ev to the webhooks, if any. The dispatcher logs what it drops.
func (l *State) emit(ctx context.Context, ev webhook.Event) {
	if l.hooks == nil {
		return
	}
	_ = l.hooks.Emit(context.WithoutCancel(ctx), ev)
}

// emitLive reports that t went live on node (once: the caller's wentLive
// comes from the transaction that marked it live).
func (l *State) emitLive(ctx context.Context, t *models.PublishTarget, node, addr string, publishID int64) {
	l.emit(ctx, webhook.Event{Type: webhook.StreamLive, Application: t.App,
		Data: webhook.StreamData{StreamID: t.StreamID, App: t.App, Name: t.Name, Node: node, PublishID: publishID, Addr: addr}})
}

// emitLiveByID is emitLive for a stream known by id (the reaper's restore).
func (l *State) emitLiveByID(ctx context.Context, id int64, node string, publishID int64) {
	if l.hooks == nil {
		return
	}
	st, err := l.st.StreamByID(ctx, id)
	if err != nil {
		l.log.Warn("webhook stream.live: stream lookup", "stream", id, "err", err)
		return
	}
	l.emitLive(ctx, &models.PublishTarget{StreamID: id, App: st.Application.Name, Name: st.Name}, node, "", publishID)
}

// emitOffline reports that stream id went offline (once: StreamOffline
// runs only for the transaction that cleared its last origin). A stream
// deleted meanwhile is reported by id only, to the global endpoints.
func (l *State) emitOffline(ctx context.Context, id int64, why string) {
	if l.hooks == nil {
		return
	}
	d := webhook.StreamData{StreamID: id, Reason: why}
	if st, err := l.st.StreamByID(ctx, id); err == nil {
		d.App, d.Name = st.Application.Name, st.Name
	}
	l.emit(ctx, webhook.Event{Type: webhook.StreamOffline, Application: d.App, Data: d})
}

// emitRefused reports a refused publish, at most once a minute per app,
// name, address and code. The requested name may be the key: it is
// redacted as in the audit log; a matched stream is named by its public
// name.
func (l *State) emitRefused(ctx context.Context, req Request, d Decision) {
	if l.hooks == nil || d.Allow || d.Code == CodeUnavailable {
		return
	}
	data := webhook.PublishRefusedData{App: req.App, Name: Redact(req.Name), Node: req.Node, Addr: req.Addr, Code: d.Code, Reason: d.Reason}
	if d.Target != nil {
		data.StreamID, data.App, data.Name = d.Target.StreamID, d.Target.App, d.Target.Name
	}
	if !l.refused.allow(data.App+"/"+data.Name+"|"+req.Addr+"|"+d.Code, l.clock()) {
		return
	}
	l.emit(ctx, webhook.Event{Type: webhook.PublishRefused, Application: data.App, Data: data})
}

// EmitLostNodes reports the nodes that stopped heartbeating, each loss
// once across the control-plane replicas (models.Store.ClaimLostNodes).
func (l *State) emitLostNodes(ctx context.Context, now time.Time) error {
	if l.hooks == nil {
		return nil
	}
	lost, err := l.st.ClaimLostNodes(ctx, now.Add(-l.AliveWindow()), now)
	if err != nil {
		return err
	}
	for _, n := range lost {
		l.log.Warn("node lost", "node", n.Name, "role", n.Role, "last_heartbeat", n.LastHeartbeat)
		l.emit(ctx, webhook.Event{Type: webhook.NodeLost,
			Data: webhook.NodeData{Name: n.Name, Role: n.Role, LastHeartbeat: n.LastHeartbeat.UTC()}})
	}
	return nil
}
