package core

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/portier/portier/models"
)

// CreateApplication adds an RTMP application name.
func (c *Core) CreateApplication(ctx context.Context, by Actor, name string) (*models.Application, error) {
	if err := checkNames("name", name); err != nil {
		return nil, err
	}
	var app *models.Application
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if app, err = tx.CreateApplication(ctx, name); err != nil {
			return conflict(err, "name", "an application %s already exists", name)
		}
		return tx.Audit(ctx, c.event(by, "application.create", "application/"+name, nil))
	})
	if err != nil {
		return nil, err
	}
	return app, nil
}

// DeleteApplication removes an application without streams.
func (c *Core) DeleteApplication(ctx context.Context, by Actor, id int64) error {
	return c.store.Tx(ctx, func(tx *models.Store) error {
		app, err := tx.DeleteApplication(ctx, id)
		if errors.Is(err, models.ErrInUse) {
			return &ConflictError{Message: "delete the application's streams first: " + err.Error()}
		}
		if err != nil {
			return err
		}
		return tx.Audit(ctx, c.event(by, "application.delete", "application/"+app.Name, nil))
	})
}

// CreateUser adds a user (models.AddUser: validated, written and audited
// in one transaction).
func (c *Core) CreateUser(ctx context.Context, by Actor, nu models.NewUser) (*models.User, error) {
	u, err := c.store.AddUser(ctx, nu, by)
	return u, conflict(err, "username", "a user %s already exists", nu.Username)
}

// ChangeUser changes a user's role, disabled flag, language or password
// (models.ChangeUser). A new password or disabling ends the user's
// sessions (but ch.KeepSessionID), whichever surface asks.
func (c *Core) ChangeUser(ctx context.Context, by Actor, id int64, ch models.UserChange) (*models.User, error) {
	return c.store.ChangeUser(ctx, id, ch, by)
}

// SetPassword sets a user's password and ends their other sessions
// (keepSession, the session of a user changing their own password, stays).
func (c *Core) SetPassword(ctx context.Context, by Actor, id int64, password, keepSession string) (*models.User, error) {
	return c.ChangeUser(ctx, by, id, models.UserChange{UserUpdate: models.UserUpdate{Password: &password}, KeepSessionID: keepSession})
}

// IssueToken makes an API token for u (models.IssueToken) and returns it
// in clear, once.
func (c *Core) IssueToken(ctx context.Context, by Actor, u *models.User, name string, scopes []string, expires *time.Time) (string, *models.APIToken, error) {
	return c.store.IssueToken(ctx, u, name, scopes, expires, by)
}

// RevokeToken revokes one of the actor's own tokens.
func (c *Core) RevokeToken(ctx context.Context, by Actor, tokenID int64) error {
	return c.store.Tx(ctx, func(tx *models.Store) error {
		if _, err := tx.RevokeToken(ctx, by.ID, tokenID); err != nil {
			return err
		}
		return tx.Audit(ctx, c.event(by, "token.revoke", "token/"+strconv.FormatInt(tokenID, 10), nil))
	})
}

// DeleteUser removes a user with their tokens and sessions
// (models.DeleteUser: refused while they own streams).
func (c *Core) DeleteUser(ctx context.Context, by Actor, id int64) error {
	return c.store.DeleteUser(ctx, id, by)
}
