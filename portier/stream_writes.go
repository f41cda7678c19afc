package portier

import (
	"context"
	"fmt"

	"github.com/portier/portier/models"
)

// The writes of a stream that revoke its publishes (disable, key rotation,
// delete), one function each: the REST handlers (api_streams.go) and the
// UI handlers (ui_streams.go) call them and only translate input and
// errors. Each validates, writes, revokes the running publishes and audits
// in one transaction; the relays holding a revoked publish are told to end
// it in the answer to their next heartbeat (reconcile).

// updateStream changes a stream's name or flags (ev is the caller's audit
// event). Disabling a stream revokes its running publishes.
func (s *Server) updateStream(ctx context.Context, st *models.Stream, up models.StreamUpdate, ev *models.AuditEvent) (*models.Stream, error) {
	var out *models.Stream
	var revoked []models.StreamOrigin
	var offline bool
	err := s.p.Store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if out, err = tx.UpdateStream(ctx, st.ID, up); err != nil {
			return err
		}
		if up.Enabled != nil && !*up.Enabled {
			if revoked, offline, err = tx.RevokePublishes(ctx, st.ID, models.RevokeDisabled, s.revokeEvent(ev, st, models.RevokeDisabled)); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	s.afterRevoke(ctx, st, revoked, offline, models.RevokeDisabled)
	s.afterStreamChange(ctx, st.ID)
	return out, nil
}

// rotateStreamKey gives a stream a new key and revokes the publishes that
// the old one authorised.
func (s *Server) rotateStreamKey(ctx context.Context, st *models.Stream, ev *models.AuditEvent) (*models.Stream, error) {
	var out *models.Stream
	var revoked []models.StreamOrigin
	var offline bool
	err := s.p.Store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if out, err = tx.RotateStreamKey(ctx, st.ID); err != nil {
			return err
		}
		if revoked, offline, err = tx.RevokePublishes(ctx, st.ID, models.RevokeKeyRotated, s.revokeEvent(ev, st, models.RevokeKeyRotated)); err != nil {
			return err
		}
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	s.afterRevoke(ctx, st, revoked, offline, models.RevokeKeyRotated)
	s.afterStreamChange(ctx, st.ID)
	return out, nil
}

// deleteStream removes a stream; relays holding its publish are told to end
// it at their next heartbeat (the stream id they report is gone).
func (s *Server) deleteStream(ctx context.Context, st *models.Stream, ev *models.AuditEvent) error {
	var revoked []models.StreamOrigin
	err := s.p.Store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if revoked, err = tx.StreamOrigins(ctx, st.ID); err != nil {
			return err
		}
		if err := tx.DeleteStream(ctx, st.ID); err != nil {
			return err
		}
		mk := s.revokeEvent(ev, st, models.RevokeDeleted)
		for _, o := range revoked {
			if err := tx.Audit(ctx, mk(o)); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return err
	}
	s.afterRevoke(ctx, st, revoked, false, models.RevokeDeleted)
	return nil
}

// revokeEvent builds the audit event of one revoked publish: the stream,
// the relay holding it and why, by the actor of the change.
func (s *Server) revokeEvent(change *models.AuditEvent, st *models.Stream, reason string) func(o models.StreamOrigin) *models.AuditEvent {
	return func(o models.StreamOrigin) *models.AuditEvent {
		return &models.AuditEvent{
			Time: s.lv.now().UTC(), Actor: change.Actor, Action: "publish.revoke", Object: fmt.Sprintf("stream:%d", st.ID),
			Result: models.ResultOK, Node: o.NodeName, Addr: change.Addr,
			Reason: "stream " + revokeText(reason) + ": relay " + o.NodeName + " ends the publish at its next heartbeat",
			Details: models.MustJSON(map[string]any{"reason": reason, "publish_id": o.PublishID,
				"app": st.Application.Name, "name": st.Name}),
		}
	}
}

// afterRevoke logs the revocation and stops the tasks of a stream that
// went offline with it.
func (s *Server) afterRevoke(ctx context.Context, st *models.Stream, revoked []models.StreamOrigin, offline bool, reason string) {
	for _, o := range revoked {
		s.lv.log.Info("publish revoked", "stream", st.ID, "node", o.NodeName, "publish", o.PublishID, "reason", reason)
	}
	if offline {
		s.lv.streamOffline(ctx, st.ID, "publish revoked: "+revokeText(reason))
	}
}
