package models

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PublishTarget is what a publish or play decision needs to know about a
// stream (one query, no preloads: this is on the hook's hot path).
type PublishTarget struct {
	StreamID      int64
	App           string
	Name          string
	PublishKey    string
	Enabled       bool
	AllowTakeover bool
	Live          bool
}

// hot returns the store with prepared statements, for the hook path that
// runs the same few statements thousands of times a second (SQLite spends
// a fifth of a decision re-parsing them otherwise).
func (s *Store) hot() *Store {
	return &Store{DB: s.DB.Session(&gorm.Session{PrepareStmt: true}), dialect: s.dialect, provider: s.provider, writers: s.writers, group: s.group, targets: s.targets, live: s.live}
}

func (s *Store) publishTargetQuery(ctx context.Context) *gorm.DB {
	return s.hot().db(ctx).Table("streams").
		Select("streams.id AS stream_id, applications.name AS app, streams.name AS name, streams.publish_key, streams.enabled, streams.allow_takeover, streams.live").
		Joins("JOIN applications ON applications.id = streams.application_id")
}

// PublishTargetByName finds app/name.
func (s *Store) PublishTargetByName(ctx context.Context, app, name string) (*PublishTarget, error) {
	var t PublishTarget
	res := s.publishTargetQuery(ctx).Where("applications.name = ? AND streams.name = ?", app, name).Limit(1).Scan(&t)
	if res.Error != nil {
		return nil, fmt.Errorf("find stream %s/%s: %w", app, name, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("stream %s/%s: %w", app, name, ErrNotFound)
	}
	return &t, nil
}

// PublishTargetByKey finds the stream whose publish key is key.
func (s *Store) PublishTargetByKey(ctx context.Context, key string) (*PublishTarget, error) {
	if key == "" {
		return nil, fmt.Errorf("stream by key: %w", ErrNotFound)
	}
	var t PublishTarget
	res := s.publishTargetQuery(ctx).Where("streams.publish_key = ?", key).Limit(1).Scan(&t)
	if res.Error != nil {
		return nil, fmt.Errorf("find stream by key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("stream by key: %w", ErrNotFound)
	}
	return &t, nil
}

// Revocation reasons (Stream.RevokeReason, RevokedError.Reason).
const (
	RevokeDeleted    = "deleted"
	RevokeDisabled   = "disabled"
	RevokeKeyRotated = "key_rotated"
	// RevokeKicked: an operator ended the publish (Core.KickPublisher);
	// unlike the others it bars nothing: the encoder may publish again.
	RevokeKicked = "kicked"
)

// ErrRevoked: the publish was revoked (its stream was disabled, deleted or
// got a new key since the publish was authorised).
var ErrRevoked = errors.New("publish revoked")

// RevokedError says why a publish was revoked; it is an ErrRevoked.
type RevokedError struct {
	StreamID int64
	Reason   string // RevokeDeleted, RevokeDisabled or RevokeKeyRotated
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("publish of stream %d revoked: %s", e.StreamID, e.Reason)
}

// Is makes a RevokedError an ErrRevoked.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// Publish is one publish to record with AddPublish.
type Publish struct {
	StreamID int64
	Node     string
	Now      time.Time
	// New: a new publish (authorised now). It is counted and gets the next
	// publish number of the stream, which it keeps as long as it runs.
	New bool
	// Key, when set, must still be the stream's publish key inside the
	// transaction: an authorisation that checked the key before a rotation
	// committed is refused (RevokedError key_rotated).
	Key string
	// RequireEnabled refuses a disabled stream (RevokedError disabled).
	RequireEnabled bool
	// PublishID (not New) is the number of a publish a node reports: a
	// revoked one (at or below the stream's RevokedThrough) is refused.
	PublishID int64
	Event     *AuditEvent
}

// AddPublish is AddOrigin with the publish's identity: it returns the
// publish number (for a new publish, the next one of the stream; else
// p.PublishID), refuses revoked publishes with a *RevokedError, and records
// the number on the origin.
func (s *Store) AddPublish(ctx context.Context, p Publish) (wentLive bool, publishID int64, err error) {
	op := &originOp{streamID: p.StreamID, node: p.Node, now: p.Now, countPublish: p.New, ev: p.Event,
		key: p.Key, requireEnabled: p.RequireEnabled, publishID: p.PublishID}
	if s.group != nil {
		if err := s.group.Do(ctx, op); err != nil {
			return false, 0, fmt.Errorf("add origin of stream %d: %w", p.StreamID, err)
		}
	} else if _, err := s.addOriginAlone(ctx, op); err != nil {
		return false, 0, err
	}
	return op.wentLive, op.publishID, op.err
}

// AddOrigin records that node holds the publish of a stream (idempotent) and
// marks the stream live. With countPublish it also counts a new publish
// (publish_count, last_publish_at). ev, when not nil, is stored in the same
// transaction. wentLive is true only for the call that turned the stream
// from offline to live, however many replicas race. A stream that goes live
// gets its tasks (SetLiveCompiler) in the same transaction: no moment
// exists where it is live without them, and going live costs one commit.
func (s *Store) AddOrigin(ctx context.Context, streamID int64, node string, now time.Time, countPublish bool, ev *AuditEvent) (wentLive bool, err error) {
	op := &originOp{streamID: streamID, node: node, now: now, countPublish: countPublish, ev: ev}
	if s.group != nil {
		if err := s.group.Do(ctx, op); err != nil {
			return false, fmt.Errorf("add origin of stream %d: %w", streamID, err)
		}
		return op.wentLive, op.err
	}
	return s.addOriginAlone(ctx, op)
}

// addOriginAlone is AddOrigin in a transaction of its own (or, inside a
// transaction, in that one).
func (s *Store) addOriginAlone(ctx context.Context, op *originOp) (wentLive bool, err error) {
	err = s.hot().Tx(ctx, func(tx *Store) error {
		if err := tx.addOriginsTx(ctx, []*originOp{op}); err != nil {
			return err
		}
		return op.err
	})
	if err != nil {
		return false, err
	}
	return op.wentLive, nil
}

// addOriginsTx writes a batch of AddOrigin calls inside a transaction with a
// fixed number of statements whatever the batch size: one locking read of
// the streams' live flags, one upsert of the origins per conflict rule, one
// update per distinct publish count, one multi-row insert of the audit
// events. A call for a stream that is gone gets ErrNotFound in op.err and
// writes nothing; the others proceed. Each op's wentLive is set.
func (s *Store) addOriginsTx(ctx context.Context, ops []*originOp) error {
	ids := make([]int64, 0, len(ops))
	for _, op := range ops {
		ids = append(ids, op.streamID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	locked, err := s.lockStreamsLive(ctx, ids)
	if err != nil {
		return err
	}
	live := make(map[int64]bool, len(locked))
	for id, l := range locked {
		live[id] = l.Live
	}

	type originKey struct {
		stream int64
		node   string
	}
	var (
		now     time.Time
		origins = map[originKey]*StreamOrigin{}
		upsert  = map[originKey]bool{} // a counted publish restarts Since
		counts  = map[int64]int{}      // stream -> publishes counted
		wentOn  []int64
		evs     = make([]*AuditEvent, 0, len(ops))
	)
	for _, op := range ops {
		was, ok := live[op.streamID]
		if !ok {
			op.err = fmt.Errorf("stream %d: %w", op.streamID, ErrNotFound)
			continue
		}
		if reason := locked[op.streamID].refuses(op); reason != "" {
			op.err = &RevokedError{StreamID: op.streamID, Reason: reason}
			continue
		}
		if op.countPublish {
			counts[op.streamID]++
			op.publishID = locked[op.streamID].PublishCount + int64(counts[op.streamID])
		}
		t := op.now.UTC()
		now = later(now, t)
		if !was {
			op.wentLive = true
			live[op.streamID] = true
			wentOn = append(wentOn, op.streamID)
		}
		k := originKey{op.streamID, op.node}
		if o := origins[k]; o == nil {
			origins[k] = &StreamOrigin{StreamID: op.streamID, NodeName: op.node, Since: t, PublishID: op.publishID}
		} else if op.countPublish {
			o.Since = later(o.Since, t)
			o.PublishID = max(o.PublishID, op.publishID)
		}
		if op.countPublish {
			upsert[k] = true
		}
		if op.ev != nil {
			evs = append(evs, op.ev)
		}
	}
	if len(origins) == 0 {
		return nil
	}

	// A new publish on a node that already holds the stream (a reconnect
	// whose done was lost) restarts Since: heartbeats taken before it must
	// not remove it, and the directory lists it first. Rows in ascending
	// order, so concurrent batches meet in the same order.
	var restart, keep []*StreamOrigin
	for k, o := range origins {
		if upsert[k] {
			restart = append(restart, o)
		} else {
			keep = append(keep, o)
		}
	}
	for _, rows := range [][]*StreamOrigin{restart, keep} {
		if len(rows) == 0 {
			continue
		}
		slices.SortFunc(rows, func(a, b *StreamOrigin) int {
			if c := cmp.Compare(a.StreamID, b.StreamID); c != 0 {
				return c
			}
			return strings.Compare(a.NodeName, b.NodeName)
		})
		onConflict := clause.OnConflict{DoNothing: true}
		if upsert[originKey{rows[0].StreamID, rows[0].NodeName}] {
			onConflict = clause.OnConflict{
				Columns:   []clause.Column{{Name: "stream_id"}, {Name: "node_name"}},
				DoUpdates: clause.AssignmentColumns([]string{"since", "publish_id"}),
			}
		}
		if err := s.db(ctx).Clauses(onConflict).Create(&rows).Error; err != nil {
			return fmt.Errorf("add %d origins: %w", len(rows), err)
		}
	}

	if len(wentOn) > 0 {
		if err := s.db(ctx).Model(&Stream{}).Where("id IN ?", wentOn).
			Updates(map[string]any{"live": true, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("mark %d streams live: %w", len(wentOn), err)
		}
		if err := s.compileLiveTx(ctx, wentOn); err != nil {
			return err
		}
	}
	byCount := map[int][]int64{} // publishes counted -> streams
	for id, n := range counts {
		byCount[n] = append(byCount[n], id)
	}
	for n, ids := range byCount {
		slices.Sort(ids)
		if err := s.db(ctx).Model(&Stream{}).Where("id IN ?", ids).Updates(map[string]any{
			"publish_count": gorm.Expr("publish_count + ?", n), "last_publish_at": now,
		}).Error; err != nil {
			return fmt.Errorf("count publishes: %w", err)
		}
	}
	return s.auditMany(ctx, evs)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RemoveOrigin records that node no longer holds a stream's publish
// (idempotent). wentOffline is true only for the call that left the stream
// with no origin.
func (s *Store) RemoveOrigin(ctx context.Context, streamID int64, node string, ev *AuditEvent) (wentOffline bool, err error) {
	return s.RemovePublishOrigin(ctx, streamID, node, 0, ev)
}

// lockStream serialises origin changes of one stream inside a transaction.
// On Postgres (read committed) two transactions removing the last two
// origins would each still see the other's row and neither would mark the
// stream offline; the row lock orders them. SQLite write transactions are
// already serial (immediate locking).
func (s *Store) lockStream(ctx context.Context, streamID int64) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	var id int64
	if err := s.db(ctx).Raw("SELECT id FROM streams WHERE id = ? FOR UPDATE", streamID).Scan(&id).Error; err != nil {
		return fmt.Errorf("lock stream %d: %w", streamID, err)
	}
	return nil
}

// lockedStream is what an origin change reads of a locked stream.
type lockedStream struct {
	ID             int64
	Live           bool
	Enabled        bool
	PublishKey     string
	PublishCount   int64
	RevokedThrough int64
	RevokeReason   string
}

// refuses says why op may not attach to the stream ("" when it may).
func (l lockedStream) refuses(op *originOp) string {
	switch {
	case op.key != "" && op.key != l.PublishKey:
		return RevokeKeyRotated
	case op.requireEnabled && !l.Enabled:
		return RevokeDisabled
	case !op.countPublish && op.publishID > 0 && op.publishID <= l.RevokedThrough:
		if l.RevokeReason != "" {
			return l.RevokeReason
		}
		return RevokeKeyRotated
	}
	return ""
}

// lockStreamsLive locks the streams ids (ascending) like lockStream and
// reads their live flags, keys and publish numbers; a stream that is gone
// is missing from the map. Inside the transaction nobody else changes them
// until commit, so "was it live" decides the transition, and a rotation or
// a disable is either before (refused here) or after (it revokes the new
// publish) an authorisation, never in between.
func (s *Store) lockStreamsLive(ctx context.Context, ids []int64) (map[int64]lockedStream, error) {
	q := "SELECT id, live, enabled, publish_key, publish_count, revoked_through, revoke_reason FROM streams WHERE id IN ? ORDER BY id"
	if s.dialect == DialectPostgres {
		q += " FOR UPDATE"
	}
	var rows []lockedStream
	if err := s.db(ctx).Raw(q, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("lock %d streams: %w", len(ids), err)
	}
	out := make(map[int64]lockedStream, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

func (s *Store) markOfflineIfOrphan(ctx context.Context, streamID int64) (bool, error) {
	res := s.db(ctx).Model(&Stream{}).
		Where("id = ? AND live = ? AND NOT EXISTS (SELECT 1 FROM stream_origins WHERE stream_origins.stream_id = ?)", streamID, true, streamID).
		// The live statistics end with the stream (see UpdateNodeStreamStats).
		Updates(map[string]any{"live": false, "updated_at": time.Now().UTC(), "codec_info": RawJSON("{}"), "bitrate": 0})
	if res.Error != nil {
		return false, fmt.Errorf("mark offline: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RefreshOrigin moves an origin's Since to now (hook-only nodes confirm a
// publish this way; see ExpireOrigins). It reports whether the origin exists.
func (s *Store) RefreshOrigin(ctx context.Context, streamID int64, node string, now time.Time) (bool, error) {
	res := s.db(ctx).Model(&StreamOrigin{}).Where("stream_id = ? AND node_name = ?", streamID, node).Update("since", now.UTC())
	if res.Error != nil {
		return false, fmt.Errorf("refresh origin: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

// NodeOrigin is one stream whose publish a node holds.
type NodeOrigin struct {
	StreamID  int64
	App       string
	Name      string
	Since     time.Time
	PublishID int64
}

// NodeOrigins lists the streams node holds.
func (s *Store) NodeOrigins(ctx context.Context, node string) ([]NodeOrigin, error) {
	var out []NodeOrigin
	err := s.db(ctx).Table("stream_origins").
		Select("stream_origins.stream_id, applications.name AS app, streams.name AS name, stream_origins.since, stream_origins.publish_id").
		Joins("JOIN streams ON streams.id = stream_origins.stream_id").
		Joins("JOIN applications ON applications.id = streams.application_id").
		Where("stream_origins.node_name = ?", node).Order("stream_origins.stream_id").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("origins of node %s: %w", node, err)
	}
	return out, nil
}

// ClearNodeOrigins removes every origin node holds and returns the streams
// that went offline because of it.
func (s *Store) ClearNodeOrigins(ctx context.Context, node string, ev *AuditEvent) ([]int64, error) {
	return s.removeOrigins(ctx, ev, "node_name = ?", node)
}

// ExpireOrigins removes the origins held by nodes whose name starts with
// prefix that were not confirmed since before, and returns the streams that
// went offline.
func (s *Store) ExpireOrigins(ctx context.Context, prefix string, before time.Time) ([]int64, error) {
	return s.removeOrigins(ctx, nil, "node_name LIKE ? AND since < ?", likePrefix(prefix), before.UTC())
}

func likePrefix(p string) string {
	out := make([]rune, 0, len(p)+1)
	for _, r := range p {
		if r == '%' || r == '_' || r == '\\' {
			// Node-name prefixes are plain words; refuse wildcards rather than escape them.
			continue
		}
		out = append(out, r)
	}
	return string(out) + "%"
}

func (s *Store) removeOrigins(ctx context.Context, ev *AuditEvent, where string, args ...any) ([]int64, error) {
	var offline []int64
	err := s.Tx(ctx, func(tx *Store) error {
		var ids []int64
		if err := tx.db(ctx).Model(&StreamOrigin{}).Where(where, args...).Distinct().Order("stream_id").Pluck("stream_id", &ids).Error; err != nil {
			return fmt.Errorf("find origins: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids { // ascending ids: a consistent lock order
			if err := tx.lockStream(ctx, id); err != nil {
				return err
			}
		}
		if err := tx.db(ctx).Where(where, args...).Delete(&StreamOrigin{}).Error; err != nil {
			return fmt.Errorf("remove origins: %w", err)
		}
		for _, id := range ids {
			off, err := tx.markOfflineIfOrphan(ctx, id)
			if err != nil {
				return err
			}
			if off {
				offline = append(offline, id)
			}
		}
		if ev != nil {
			return tx.Audit(ctx, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return offline, nil
}

// DirectoryOrigins lists the registered, alive (heartbeat at or after
// aliveSince) origin nodes that hold app/name, most recent publish first.
// Only nodes registered as origins count: a stream whose recorded holder
// registered with another role (an edge that took a name, a stale row) is
// never answered with it, so an edge is never sent to pull from an edge.
func (s *Store) DirectoryOrigins(ctx context.Context, app, name string, aliveSince time.Time) ([]Node, error) {
	var out []Node
	err := s.db(ctx).Model(&Node{}).
		Joins("JOIN stream_origins ON stream_origins.node_name = nodes.name").
		Joins("JOIN streams ON streams.id = stream_origins.stream_id").
		Joins("JOIN applications ON applications.id = streams.application_id").
		Where("applications.name = ? AND streams.name = ? AND nodes.role = ? AND nodes.last_heartbeat >= ?", app, name, NodeRoleOrigin, aliveSince.UTC()).
		Order("stream_origins.since DESC").Order("nodes.name").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("directory %s/%s: %w", app, name, err)
	}
	return out, nil
}
