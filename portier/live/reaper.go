package live

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
)

// Reap runs one pass of the reaper. While the scheduler's death gate holds
// (the database failed, or this replica started, less than an alive window
// ago) it declares nothing dead: heartbeats that could not be written make
// every node look dead.
func (l *State) Reap(ctx context.Context) error {
	defer l.sweepTombs()
	if l.sched != nil && l.sched.DeathsHeldOff() {
		return nil
	}
	st := l.st
	now := l.clock()
	dead, err := st.DeadOriginNodes(ctx, now.Add(-l.AliveWindow()))
	if err != nil {
		return err
	}
	for _, node := range dead {
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "node.dead", Object: models.NodeObject(node),
			Result: models.ResultOK, Reason: fmt.Sprintf("missed %d heartbeats; its streams are cleared", nodewire.AliveHeartbeats), Node: node,
		}
		offline, err := st.ClearNodeOrigins(ctx, node, ev)
		if err != nil {
			return err
		}
		l.log.Warn("node dead, streams cleared", "node", node, "offline", len(offline))
		for _, id := range offline {
			l.StreamOffline(ctx, id, "origin "+node+" died")
		}
	}
	for dialect, ttl := range l.originTTL {
		if ttl <= 0 {
			continue
		}
		offline, err := st.ExpireOrigins(ctx, dialect+":", now.Add(-ttl))
		if err != nil {
			return err
		}
		for _, id := range offline {
			l.StreamOffline(ctx, id, dialect+" publish not confirmed within "+ttl.String())
		}
	}
	// Statistics of relays that stopped heartbeating (3 intervals).
	if _, err := st.RemoveStaleStreamStats(ctx, now.Add(-l.AliveWindow())); err != nil {
		return err
	}
	return l.emitLostNodes(ctx, now)
}

// The heartbeat's publishes and end orders are the node API's wire types
// (internal/nodewire), defined once for both sides.
type (
	// reportedPublish is one publish a relay holds, as its heartbeat
	// reports it: StreamID and PublishID are what the publish's
	// authorisation answered; older relays report the path only.
	reportedPublish = nodewire.PublishedStream
	// endOrder tells a relay, in the heartbeat answer, to end one publish.
	endOrder = nodewire.EndOrder
)

// Reconcile makes the origin set of node equal to the publishes it
// reports, the full list of publishes it holds now, and returns the
// publishes it must end. A publish is attached only to the stream that
// authorised it (StreamID), never to another that took its name since,
// and never when revoked. Origins added in the last 3 heartbeat
// intervals are kept even if missing (the heartbeat may predate the
// publish), and publishes ended in that window are not re-added (the
// heartbeat may predate the done).
func (l *State) Reconcile(ctx context.Context, node string, reported []reportedPublish) ([]endOrder, error) {
	st := l.st
	now := l.clock()
	want, ends, err := l.reportedStreams(ctx, node, reported)
	if err != nil {
		return nil, err
	}
	cur, err := st.NodeOrigins(ctx, node)
	if err != nil {
		return nil, err
	}
	have := make(map[int64]bool, len(cur))
	for _, o := range cur {
		have[o.StreamID] = true
		if _, ok := want[o.StreamID]; ok || now.Sub(o.Since) < 3*l.hb {
			continue
		}
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "publish.reconcile", Object: models.StreamObject(o.StreamID),
			Result: models.ResultOK, Reason: "the node no longer reports this publish", Node: node,
		}
		off, err := st.RemoveOrigin(ctx, o.StreamID, node, ev)
		if err != nil {
			return nil, err
		}
		if off {
			l.StreamOffline(ctx, o.StreamID, "origin "+node+" no longer holds it")
		}
	}
	ids := slices.Sorted(maps.Keys(want))
	for _, id := range ids {
		r := want[id]
		if have[id] || l.tombstoned(node, r.Path) || l.tombstoned(node, streamTomb(id)) {
			continue
		}
		ev := &models.AuditEvent{
			Time: now.UTC(), Actor: "control", Action: "publish.reconcile", Object: models.StreamObject(id),
			Result: models.ResultOK, Reason: "the node reports a publish the control plane had lost", Node: node,
		}
		// Enabled and not revoked, checked again under the stream's lock.
		wentLive, publishID, err := st.AddPublish(ctx, models.Publish{StreamID: id, Node: node, Now: now,
			RequireEnabled: true, PublishID: r.PublishID, Event: ev})
		var rv *models.RevokedError
		switch {
		case errors.As(err, &rv):
			if r.StreamID > 0 {
				ends = append(ends, endOrder{Path: r.Path, StreamID: id, PublishID: r.PublishID, Reason: rv.Reason})
			}
			continue
		case errors.Is(err, models.ErrNotFound):
			if r.StreamID > 0 {
				ends = append(ends, endOrder{Path: r.Path, StreamID: id, PublishID: r.PublishID, Reason: models.RevokeDeleted})
			}
			continue
		case err != nil:
			return nil, err
		}
		if wentLive {
			l.streamLive()
			l.emitLiveByID(ctx, id, node, publishID)
		}
	}
	l.auditEnds(ctx, node, ends)
	return ends, nil
}

// reportedStreams resolves a heartbeat's publishes to the streams they
// belong to (want), and lists those that must end. A report with a stream
// id belongs to that stream or to none (deleted). An "app/name" report of
// an older relay is resolved by name, but only to a stream created before
// the node registered: every publish the node holds started after that,
// so such a stream existed when the publish was authorised and is the
// stream that authorised it; a newer stream may have taken the name of a
// deleted one, and is left alone.
func (l *State) reportedStreams(ctx context.Context, node string, reported []reportedPublish) (map[int64]reportedPublish, []endOrder, error) {
	st := l.st
	var ids []int64
	for _, r := range reported {
		if r.StreamID > 0 {
			ids = append(ids, r.StreamID)
		}
	}
	revs, err := st.StreamRevocations(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	want := make(map[int64]reportedPublish, len(reported))
	var ends []endOrder
	var legacy []string
	for _, r := range reported {
		if r.StreamID <= 0 {
			legacy = append(legacy, r.Path)
			continue
		}
		reason := models.RevokeDeleted
		if rev := revs[r.StreamID]; rev != nil {
			reason = rev.Revoked(r.PublishID)
		}
		if reason != "" {
			ends = append(ends, endOrder{Path: r.Path, StreamID: r.StreamID, PublishID: r.PublishID, Reason: reason})
			continue
		}
		want[r.StreamID] = r
	}
	if len(legacy) == 0 {
		return want, ends, nil
	}
	n, err := st.NodeByName(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	for _, path := range legacy {
		app, name, ok := strings.Cut(path, "/")
		if !ok || CheckAppName(app, name) != nil {
			continue
		}
		t, err := st.StreamByName(ctx, app, name)
		if err != nil || !t.Enabled {
			continue // unknown or disabled: the relay will be refused at its next authorize
		}
		if !t.CreatedAt.Before(n.RegisteredAt) {
			l.log.Debug("not attaching a reported publish to a stream newer than the node", "node", node, "stream", t.ID)
			continue
		}
		if _, dup := want[t.ID]; !dup {
			want[t.ID] = reportedPublish{Path: path}
		}
	}
	return want, ends, nil
}

// auditEnds records, once per publish, that node was told to end it.
func (l *State) auditEnds(ctx context.Context, node string, ends []endOrder) {
	for _, e := range ends {
		key := fmt.Sprintf("end\x00%s\x00%d\x00%d", node, e.StreamID, e.PublishID)
		if l.tombstoned(node, key) {
			continue // told already; the relay ends it at once
		}
		l.tombstone(node, key)
		l.log.Info("relay told to end a publish", "node", node, "stream", e.StreamID, "publish", e.PublishID, "reason", e.Reason)
		l.StoreAudit(ctx, &models.AuditEvent{
			Time: l.clock().UTC(), Actor: "control", Action: "publish.end", Object: models.StreamObject(e.StreamID),
			Result: models.ResultOK, Reason: "stream " + models.RevokeText(e.Reason) + ": the relay ends the publish", Node: node,
			Details: models.MustJSON(map[string]any{"reason": e.Reason, "publish_id": e.PublishID, "path": e.Path}),
		})
	}
}
