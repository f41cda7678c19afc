package portier

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/portier/portier/models"
)

// StartBackground starts the live-state reaper and the task scheduler;
// they run until ctx ends.
// Every heartbeat interval it clears the streams held by registered nodes
// that missed 3 heartbeats, expires the origins of hook-only nodes per
// Params.Hooks.OriginTTL, and forgets old publish-done tombstones. Each step
// is idempotent, so several control-plane replicas may run it at once.
func (s *Server) StartBackground(ctx context.Context) {
	s.startScheduler(ctx) // task placement and leases (portier/sched.go)
	go func() {
		t := time.NewTicker(s.lv.hb)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.lv.reap(ctx); err != nil && ctx.Err() == nil {
					s.lv.log.Warn("live-state reaper", "err", err)
				}
			}
		}
	}()
}

// reap runs one pass of the reaper.
func (l *liveState) reap(ctx context.Context) error {
	st := l.s.p.Store
	now := l.now()
	dead, err := st.DeadOriginNodes(ctx, now.Add(-l.aliveWindow()))
	if err != nil {
		return err
	}
	for _, node := range dead {
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "node.dead", Object: "node:" + node,
			Result: models.ResultOK, Reason: "missed 3 heartbeats; its streams are cleared", Node: node,
		}
		offline, err := st.ClearNodeOrigins(ctx, node, ev)
		if err != nil {
			return err
		}
		l.log.Warn("node dead, streams cleared", "node", node, "offline", len(offline))
		for _, id := range offline {
			l.streamOffline(ctx, id, "origin "+node+" died")
		}
	}
	for dialect, ttl := range l.s.p.Hooks.OriginTTL {
		if ttl <= 0 {
			continue
		}
		offline, err := st.ExpireOrigins(ctx, dialect+":", now.Add(-ttl))
		if err != nil {
			return err
		}
		for _, id := range offline {
			l.streamOffline(ctx, id, dialect+" publish not confirmed within "+ttl.String())
		}
	}
	// Statistics of relays that stopped heartbeating (3 intervals).
	if _, err := st.RemoveStaleStreamStats(ctx, now.Add(-l.aliveWindow())); err != nil {
		return err
	}
	l.sweepTombs()
	return nil
}

// reconcile makes the origin set of node equal to published (app/name
// strings), the full list of publishes the node holds now. Origins added in
// the last 3 heartbeat intervals are kept even if missing (the heartbeat
// may predate the publish), and publishes ended in that window are not
// re-added (the heartbeat may predate the done).
func (l *liveState) reconcile(ctx context.Context, node string, published []string) error {
	st := l.s.p.Store
	cur, err := st.NodeOrigins(ctx, node)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(published))
	for _, p := range published {
		want[p] = true
	}
	have := make(map[string]bool, len(cur))
	now := l.now()
	for _, o := range cur {
		path := o.App + "/" + o.Name
		have[path] = true
		if want[path] || now.Sub(o.Since) < 3*l.hb {
			continue
		}
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "publish.reconcile", Object: fmt.Sprintf("stream:%d", o.StreamID),
			Result: models.ResultOK, Reason: "the node no longer reports this publish", Node: node,
		}
		off, err := st.RemoveOrigin(ctx, o.StreamID, node, ev)
		if err != nil {
			return err
		}
		if off {
			l.streamOffline(ctx, o.StreamID, "origin "+node+" no longer holds it")
		}
	}
	for path := range want {
		if have[path] || l.tombstoned(node, path) {
			continue
		}
		app, name, ok := strings.Cut(path, "/")
		if !ok || checkAppName(app, name) != nil {
			continue
		}
		t, err := st.PublishTargetByName(ctx, app, name)
		if err != nil || !t.Enabled {
			continue // unknown or disabled: the relay will be refused at its next authorize
		}
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "publish.reconcile", Object: fmt.Sprintf("stream:%d", t.StreamID),
			Result: models.ResultOK, Reason: "the node reports a publish the control plane had lost", Node: node,
		}
		wentLive, err := st.AddOrigin(ctx, t.StreamID, node, now, false, ev)
		if err != nil {
			return err
		}
		if wentLive {
			l.streamLive()
		}
	}
	return nil
}
