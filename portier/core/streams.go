package core

import (
	"context"
	"fmt"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/recordings"
)

// RevealKey records that the actor was shown the stream's key (worth
// knowing after a leak).
func (c *Core) RevealKey(ctx context.Context, by Actor, st *models.Stream) error {
	return c.store.Audit(ctx, c.event(by, "stream.reveal_key", models.StreamObject(st.ID), nil))
}

// CreateStream creates the stream app/name owned by the actor (app ""
// means models.DefaultApp).
func (c *Core) CreateStream(ctx context.Context, by Actor, app, name string) (*models.Stream, error) {
	if app == "" {
		app = models.DefaultApp
	}
	if err := checkNames("name", name, "app", app); err != nil {
		return nil, err
	}
	var st *models.Stream
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if st, err = tx.CreateStream(ctx, app, name, by.ID); err != nil {
			return conflict(err, "name", "a stream %s/%s already exists", app, name)
		}
		return tx.Audit(ctx, c.event(by, "stream.create", models.StreamObject(st.ID), map[string]any{"app": app, "name": name}))
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// UpdateStream changes a stream's name or flags. Disabling a stream revokes
// its running publishes. The audit event records the fields given.
func (c *Core) UpdateStream(ctx context.Context, by Actor, st *models.Stream, up models.StreamUpdate) (*models.Stream, error) {
	if up.Name != nil {
		if err := checkNames("name", *up.Name); err != nil {
			return nil, err
		}
	}
	details := map[string]any{}
	if up.Name != nil {
		details["name"] = *up.Name
	}
	if up.Enabled != nil {
		details["enabled"] = *up.Enabled
	}
	if up.AllowTakeover != nil {
		details["allow_takeover"] = *up.AllowTakeover
	}
	if up.HLSPublic != nil {
		details["hls_public"] = *up.HLSPublic
	}
	ev := c.event(by, "stream.update", models.StreamObject(st.ID), details)
	var out *models.Stream
	var revoked []models.StreamOrigin
	var offline bool
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if out, err = tx.UpdateStream(ctx, st.ID, up); err != nil {
			if up.Name != nil {
				return conflict(err, "name", "a stream %s/%s already exists", st.Application.Name, *up.Name)
			}
			return err
		}
		if up.Enabled != nil && !*up.Enabled {
			if revoked, offline, err = tx.RevokePublishes(ctx, st.ID, models.RevokeDisabled, c.revokeEvent(ev, st, models.RevokeDisabled)); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	c.afterRevoke(ctx, st, revoked, offline, models.RevokeDisabled)
	c.live.StreamChanged(ctx, st.ID)
	return out, nil
}

// RotateKey gives a stream a new key and revokes the publishes that the
// old one authorised.
func (c *Core) RotateKey(ctx context.Context, by Actor, st *models.Stream) (*models.Stream, error) {
	ev := c.event(by, "stream.rotate_key", models.StreamObject(st.ID), nil)
	var out *models.Stream
	var revoked []models.StreamOrigin
	var offline bool
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if out, err = tx.RotateStreamKey(ctx, st.ID); err != nil {
			return err
		}
		if revoked, offline, err = tx.RevokePublishes(ctx, st.ID, models.RevokeKeyRotated, c.revokeEvent(ev, st, models.RevokeKeyRotated)); err != nil {
			return err
		}
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	c.afterRevoke(ctx, st, revoked, offline, models.RevokeKeyRotated)
	c.live.StreamChanged(ctx, st.ID)
	return out, nil
}

// notLiveMessage refuses a kick that found no publish to end.
const notLiveMessage = "stream %s/%s has no publisher to kick: it is not live on any relay"

// KickPublisher ends the stream's current publishes now: the relays
// holding them get an end order (reason kicked) with their next heartbeat
// answer, close the publisher's connection and the stream goes offline.
// It is not a ban: the key stays valid and the encoder may publish again
// at once (a new publish has a higher number than the revocation mark).
// A stream with no publish gets a ConflictError and nothing is written.
func (c *Core) KickPublisher(ctx context.Context, by Actor, st *models.Stream) (kicked []models.StreamOrigin, err error) {
	ev := c.event(by, "stream.kick", models.StreamObject(st.ID), nil)
	var offline bool
	err = c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if kicked, offline, err = tx.RevokePublishes(ctx, st.ID, models.RevokeKicked, c.revokeEvent(ev, st, models.RevokeKicked)); err != nil {
			return err
		}
		if len(kicked) == 0 {
			return &ConflictError{Message: fmt.Sprintf(notLiveMessage, st.Application.Name, st.Name)}
		}
		nodes := make([]string, 0, len(kicked))
		for _, o := range kicked {
			nodes = append(nodes, o.NodeName)
		}
		ev.Details = models.MustJSON(map[string]any{"app": st.Application.Name, "name": st.Name, "nodes": nodes})
		return tx.Audit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	c.afterRevoke(ctx, st, kicked, offline, models.RevokeKicked)
	c.live.StreamChanged(ctx, st.ID)
	return kicked, nil
}

// DeleteStream removes a stream; relays holding its publish are told to end
// it at their next heartbeat (the stream id they report is gone).
func (c *Core) DeleteStream(ctx context.Context, by Actor, st *models.Stream) error {
	ev := c.event(by, "stream.delete", models.StreamObject(st.ID), map[string]any{"app": st.Application.Name, "name": st.Name})
	var revoked []models.StreamOrigin
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if revoked, err = tx.StreamOrigins(ctx, st.ID); err != nil {
			return err
		}
		if err := tx.DeleteStream(ctx, st.ID); err != nil {
			return err
		}
		mk := c.revokeEvent(ev, st, models.RevokeDeleted)
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
	c.afterRevoke(ctx, st, revoked, false, models.RevokeDeleted)
	return nil
}

// revokeEvent builds the audit event of one revoked publish: the stream,
// the relay holding it and why, by the actor of the change.
func (c *Core) revokeEvent(change *models.AuditEvent, st *models.Stream, reason string) func(o models.StreamOrigin) *models.AuditEvent {
	return func(o models.StreamOrigin) *models.AuditEvent {
		return &models.AuditEvent{
			Time: c.now().UTC(), Actor: change.Actor, Action: "publish.revoke", Object: models.StreamObject(st.ID),
			Result: models.ResultOK, Node: o.NodeName, Addr: change.Addr,
			Reason: "stream " + models.RevokeText(reason) + ": relay " + o.NodeName + " ends the publish at its next heartbeat",
			Details: models.MustJSON(map[string]any{"reason": reason, "publish_id": o.PublishID,
				"app": st.Application.Name, "name": st.Name}),
		}
	}
}

// afterRevoke logs the revocation and stops the tasks of a stream that
// went offline with it.
func (c *Core) afterRevoke(ctx context.Context, st *models.Stream, revoked []models.StreamOrigin, offline bool, reason string) {
	for _, o := range revoked {
		c.log.Info("publish revoked", "stream", st.ID, "node", o.NodeName, "publish", o.PublishID, "reason", reason)
	}
	if offline {
		c.live.StreamOffline(ctx, st.ID, "publish revoked: "+models.RevokeText(reason))
	}
}

// DeleteRecording deletes the stream's recorded segment name in dir (the
// stream's recording directory; recordings.Delete checks the name), audited
// as recording.delete.
func (c *Core) DeleteRecording(ctx context.Context, by Actor, st *models.Stream, dir, name string) error {
	if err := recordings.Delete(dir, name); err != nil {
		return err
	}
	return c.store.Audit(ctx, c.event(by, "recording.delete", models.StreamObject(st.ID)+"/recording/"+name, nil))
}
