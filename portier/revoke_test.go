package portier

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
)

// authorizeOn publishes the env's stream on node with key and returns the
// publish id the answer carries.
func (e *liveEnv) authorizeOn(t *testing.T, node, key string) (int, int64) {
	t.Helper()
	code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": node, "app": "live", "name": "show", "query": "key=" + key})
	if code != 200 {
		return code, 0
	}
	if out["stream_id"] != float64(e.stream.ID) {
		t.Fatalf("authorize answered stream %v, want %d", out["stream_id"], e.stream.ID)
	}
	pid, _ := out["publish_id"].(float64)
	if pid <= 0 {
		t.Fatalf("authorize answered no publish_id: %v", out)
	}
	return code, int64(pid)
}

// heartbeatPublishes sends a heartbeat in the newer form and returns the
// publishes the control plane tells the node to end.
func (e *liveEnv) heartbeatPublishes(t *testing.T, node string, pubs ...nodewire.PublishedStream) []map[string]any {
	t.Helper()
	if pubs == nil {
		pubs = []nodewire.PublishedStream{}
	}
	code, out := e.call(t, "POST", "/internal/v1/nodes/"+node+"/heartbeat", map[string]any{"load": map[string]any{}, "publishes": pubs})
	if code != 200 {
		t.Fatalf("heartbeat: %d %v", code, out)
	}
	var ends []map[string]any
	list, _ := out["end"].([]any)
	for _, x := range list {
		ends = append(ends, x.(map[string]any))
	}
	return ends
}

func (e *liveEnv) auditCount(t *testing.T, action, node string) int {
	t.Helper()
	evs, _, err := e.store.ListAudit(context.Background(), models.AuditFilter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Node == node {
			n++
		}
	}
	return n
}

func wantEnd(t *testing.T, ends []map[string]any, streamID, publishID int64, reason string) {
	t.Helper()
	if len(ends) != 1 || ends[0]["stream_id"] != float64(streamID) || ends[0]["publish_id"] != float64(publishID) || ends[0]["reason"] != reason {
		t.Fatalf("heartbeat answered end %v, want stream %d publish %d ended for %s", ends, streamID, publishID, reason)
	}
}

// Disabling a stream or rotating its key revokes its running publish: the
// stream goes offline at once, the relay is told to end the publish in the
// answer to its next heartbeat, the revocation and the order are audited
// with the stream, the relay and why, and the revoked publish is never
// attached again.
func TestRevocationEndsPublishes(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		e.register(t, "origin-1", "origin")
		_, pid := e.authorizeOn(t, "origin-1", e.stream.PublishKey)
		pub := nodewire.PublishedStream{Path: "live/show", StreamID: e.stream.ID, PublishID: pid}
		if ends := e.heartbeatPublishes(t, "origin-1", pub); len(ends) != 0 || !e.live(t) {
			t.Fatalf("a valid publish: ends %v, live %v", ends, e.live(t))
		}

		// Disable: offline at once; the next heartbeat ends the publish.
		off := false
		st, _ := e.store.StreamByID(ctx, e.stream.ID)
		if _, err := e.srv.Core().UpdateStream(ctx, core.Actor{Name: "op"}, st, models.StreamUpdate{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		if e.live(t) {
			t.Fatal("a disabled stream is still live")
		}
		wantEnd(t, e.heartbeatPublishes(t, "origin-1", pub), e.stream.ID, pid, "disabled")
		if e.live(t) {
			t.Fatal("the heartbeat re-attached a publish of a disabled stream")
		}
		if e.auditCount(t, "publish.revoke", "origin-1") != 1 || e.auditCount(t, "publish.end", "origin-1") != 1 {
			t.Fatal("no publish.revoke and publish.end audit events naming the relay")
		}
		// Re-enabled: the publish the disable revoked stays revoked.
		on := true
		if _, err := e.srv.Core().UpdateStream(ctx, core.Actor{Name: "op"}, st, models.StreamUpdate{Enabled: &on}); err != nil {
			t.Fatal(err)
		}
		wantEnd(t, e.heartbeatPublishes(t, "origin-1", pub), e.stream.ID, pid, "disabled")
		if e.live(t) {
			t.Fatal("re-enabling brought a revoked publish back")
		}

		// A new publish, then a key rotation: it is revoked; the old key is refused.
		_, pid2 := e.authorizeOn(t, "origin-1", e.stream.PublishKey)
		pub2 := nodewire.PublishedStream{Path: "live/show", StreamID: e.stream.ID, PublishID: pid2}
		if ends := e.heartbeatPublishes(t, "origin-1", pub2); len(ends) != 0 || !e.live(t) || pid2 <= pid {
			t.Fatalf("a new publish: id %d (old %d), ends %v, live %v", pid2, pid, ends, e.live(t))
		}
		rot, err := e.srv.Core().RotateKey(ctx, core.Actor{Name: "op"}, st)
		if err != nil {
			t.Fatal(err)
		}
		if e.live(t) {
			t.Fatal("live after the key rotation")
		}
		wantEnd(t, e.heartbeatPublishes(t, "origin-1", pub2), e.stream.ID, pid2, "key_rotated")
		if code, _ := e.authorizeOn(t, "origin-1", e.stream.PublishKey); code != 403 {
			t.Fatalf("a publish with the old key: %d, want 403", code)
		}
		// A publish with the new key goes on while the revoked one is still reported.
		_, pid3 := e.authorizeOn(t, "origin-2", rot.PublishKey)
		e.register(t, "origin-2", "origin")
		pub3 := nodewire.PublishedStream{Path: "live/show", StreamID: e.stream.ID, PublishID: pid3}
		if ends := e.heartbeatPublishes(t, "origin-2", pub3); len(ends) != 0 || !e.live(t) {
			t.Fatalf("a publish with the new key: ends %v, live %v", ends, e.live(t))
		}

		// A kick ends the publish at the next heartbeat, but is no ban:
		// the same key publishes again and that publish goes on.
		st, _ = e.store.StreamByID(ctx, e.stream.ID)
		kicked, err := e.srv.Core().KickPublisher(ctx, core.Actor{Name: "op"}, st)
		if err != nil || len(kicked) != 1 || kicked[0].NodeName != "origin-2" || kicked[0].PublishID != pid3 {
			t.Fatalf("kick: %+v, %v", kicked, err)
		}
		if e.live(t) {
			t.Fatal("live after the kick")
		}
		wantEnd(t, e.heartbeatPublishes(t, "origin-2", pub3), e.stream.ID, pid3, "kicked")
		code, pid4 := e.authorizeOn(t, "origin-2", rot.PublishKey)
		if code != 200 || pid4 <= pid3 {
			t.Fatalf("a publish after the kick: %d, id %d (kicked %d)", code, pid4, pid3)
		}
		pub4 := nodewire.PublishedStream{Path: "live/show", StreamID: e.stream.ID, PublishID: pid4}
		if ends := e.heartbeatPublishes(t, "origin-2", pub4); len(ends) != 0 || !e.live(t) {
			t.Fatalf("the publish after the kick: ends %v, live %v", ends, e.live(t))
		}
		if _, err := e.srv.Core().KickPublisher(ctx, core.Actor{Name: "op"}, st); err != nil {
			t.Fatal(err)
		}
		if _, err := e.srv.Core().KickPublisher(ctx, core.Actor{Name: "op"}, st); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("a kick with nothing to end: %v, want a conflict", err)
		}
	})
}

// A publish is attached only to the stream whose key authorised it: after
// a delete, a new stream of another owner that reuses the name stays
// offline while the relay still reports the old publish, and the old
// publish is told to end (the newer form); an older relay's "app/name"
// report is not attached to a stream created after the node registered.
func TestHeartbeatNeverAttachesToANewStreamOfTheName(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		e.register(t, "origin-1", "origin")
		_, pid := e.authorizeOn(t, "origin-1", e.stream.PublishKey)
		old := nodewire.PublishedStream{Path: "live/show", StreamID: e.stream.ID, PublishID: pid}
		st, _ := e.store.StreamByID(ctx, e.stream.ID)
		if err := e.srv.Core().DeleteStream(ctx, core.Actor{Name: "op"}, st); err != nil {
			t.Fatal(err)
		}
		other, err := e.store.CreateUser(ctx, "other", "a-long-password-2", models.RoleOperator)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := e.store.CreateStream(ctx, "live", "show", other.ID)
		if err != nil {
			t.Fatal(err)
		}
		isLive := func() bool {
			s, err := e.store.StreamByID(ctx, fresh.ID)
			if err != nil {
				t.Fatal(err)
			}
			return s.Live
		}
		wantEnd(t, e.heartbeatPublishes(t, "origin-1", old), old.StreamID, pid, "deleted")
		if isLive() {
			t.Fatal("the old publish was attached to the new stream of the name")
		}
		if e.auditCount(t, "publish.revoke", "origin-1") != 1 || e.auditCount(t, "publish.end", "origin-1") != 1 {
			t.Fatal("the delete's revocation and the end order are not audited with the relay")
		}
		// An older relay reports the path only.
		if code := e.heartbeat(t, "origin-1", "live/show"); code != 200 {
			t.Fatalf("legacy heartbeat: %d", code)
		}
		if isLive() {
			t.Fatal("a legacy report was attached to a stream created after the node registered")
		}
		// A relay that registered after the stream existed: its legacy report is its own publish.
		e.clock.add(time.Since(e.clock.now()) + time.Millisecond) // register after the stream's creation
		e.register(t, "origin-9", "origin")
		if code := e.heartbeat(t, "origin-9", "live/show"); code != 200 || !isLive() {
			t.Fatalf("legacy report of a node registered after the stream: %d, live %v", code, isLive())
		}
	})
}
