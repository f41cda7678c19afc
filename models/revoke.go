package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// RevokePublishes revokes every publish of a stream numbered so far (the
// stream's publish count): the stream forgets its origins and goes offline,
// each origin's node is told to end its publish at its next heartbeat (the
// reported publish is refused: StreamRevocation), and no later heartbeat
// attaches such a publish again. reason is RevokeDisabled or
// RevokeKeyRotated. ev, when not nil, builds one audit event per origin
// node. Run it in the transaction of the change that revokes (a disable, a
// key rotation), so both commit together. It returns the origins it removed.
func (s *Store) RevokePublishes(ctx context.Context, streamID int64, reason string, ev func(o StreamOrigin) *AuditEvent) (removed []StreamOrigin, wentOffline bool, err error) {
	err = s.Tx(ctx, func(tx *Store) error {
		if err := tx.lockStream(ctx, streamID); err != nil {
			return err
		}
		res := tx.db(ctx).Model(&Stream{}).Where("id = ?", streamID).Updates(map[string]any{
			"revoked_through": gorm.Expr("publish_count"), "revoke_reason": reason,
		})
		if res.Error != nil {
			return fmt.Errorf("revoke publishes of stream %d: %w", streamID, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("revoke publishes of stream %d: %w", streamID, ErrNotFound)
		}
		if err := tx.db(ctx).Where("stream_id = ?", streamID).Order("node_name").Find(&removed).Error; err != nil {
			return fmt.Errorf("origins of stream %d: %w", streamID, err)
		}
		if len(removed) == 0 {
			return nil
		}
		if err := tx.db(ctx).Where("stream_id = ?", streamID).Delete(&StreamOrigin{}).Error; err != nil {
			return fmt.Errorf("remove origins of stream %d: %w", streamID, err)
		}
		off, err := tx.markOfflineIfOrphan(ctx, streamID)
		if err != nil {
			return err
		}
		wentOffline = off
		if ev == nil {
			return nil
		}
		evs := make([]*AuditEvent, 0, len(removed))
		for _, o := range removed {
			if e := ev(o); e != nil {
				evs = append(evs, e)
			}
		}
		return tx.auditMany(ctx, evs)
	})
	if err != nil {
		return nil, false, err
	}
	return removed, wentOffline, nil
}

// StreamRevocation is what the control plane knows of a stream a node
// reports a publish of, to decide whether that publish may go on.
type StreamRevocation struct {
	StreamID       int64
	App            string
	Name           string
	Enabled        bool
	RevokedThrough int64
	RevokeReason   string
	CreatedAt      time.Time
}

// Revoked says why the stream's publish number publishID must end ("" when
// it may go on): the stream is disabled, or the publish is at or below the
// stream's revocation mark (a key rotation or a disable since it started).
func (r *StreamRevocation) Revoked(publishID int64) string {
	switch {
	case !r.Enabled:
		return RevokeDisabled
	case publishID > 0 && publishID <= r.RevokedThrough:
		if r.RevokeReason != "" {
			return r.RevokeReason
		}
		return RevokeKeyRotated
	}
	return ""
}

// StreamRevocations loads the streams ids (missing ones are deleted).
func (s *Store) StreamRevocations(ctx context.Context, ids []int64) (map[int64]*StreamRevocation, error) {
	out := make(map[int64]*StreamRevocation, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []StreamRevocation
	err := s.db(ctx).Table("streams").
		Select("streams.id AS stream_id, applications.name AS app, streams.name AS name, streams.enabled, streams.revoked_through, streams.revoke_reason, streams.created_at").
		Joins("JOIN applications ON applications.id = streams.application_id").
		Where("streams.id IN ?", ids).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load %d streams: %w", len(ids), err)
	}
	for i := range rows {
		out[rows[i].StreamID] = &rows[i]
	}
	return out, nil
}

// RemovePublishOrigin is RemoveOrigin for the end of one identified
// publish: the origin is removed only if it still records publishID (or
// publishID is 0: unknown), so the late end of an older publish never
// removes a newer one on the same node.
func (s *Store) RemovePublishOrigin(ctx context.Context, streamID int64, node string, publishID int64, ev *AuditEvent) (wentOffline bool, err error) {
	err = s.hot().Tx(ctx, func(tx *Store) error {
		if err := tx.lockStream(ctx, streamID); err != nil {
			return err
		}
		q := tx.db(ctx).Where("stream_id = ? AND node_name = ?", streamID, node)
		if publishID > 0 {
			q = q.Where("publish_id <= ?", publishID)
		}
		if err := q.Delete(&StreamOrigin{}).Error; err != nil {
			return fmt.Errorf("remove origin: %w", err)
		}
		off, err := tx.markOfflineIfOrphan(ctx, streamID)
		if err != nil {
			return err
		}
		wentOffline = off
		if ev != nil {
			return tx.Audit(ctx, ev)
		}
		return nil
	})
	return wentOffline, err
}

// RevokeText is a revocation reason in words, for audit events and logs.
func RevokeText(reason string) string {
	switch reason {
	case RevokeDeleted:
		return "deleted"
	case RevokeDisabled:
		return "disabled"
	case RevokeKeyRotated:
		return "key rotated"
	case RevokeKicked:
		return "publisher kicked"
	}
	return reason
}
