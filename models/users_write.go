package models

import (
	"context"
	"fmt"
	"time"
)

// The write paths of user accounts. Each change a person can make to an
// account (create it; change its role, language, password or disabled
// state) is one function here that validates, writes, ends sessions where
// the change demands it and records the audit event in one transaction. The
// REST API, the web UI and the CLI call these and only translate input and
// errors (STYLE.md, habit 14).

// Actor is who makes a change, for the audit event: a user name (or "cli"),
// the user's id when the change comes from a signed-in user (0 otherwise),
// and the client address.
type Actor struct {
	Name string
	ID   int64
	Addr string
}

// NewUser is a user to create.
type NewUser struct {
	Username, Password, Role string
	Language                 string // empty: the browser's
}

// PasswordRule is the rule for passwords, in the words every refusal uses.
var PasswordRule = fmt.Sprintf("must have %d to 72 characters", MinPasswordLen)

// CheckPassword reports whether pw is acceptable as a *SpecError on "password".
func CheckPassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > 72 {
		return specErr("password", "%s", PasswordRule)
	}
	return nil
}

// AddUser creates a user and its audit event (user.create) in one
// transaction. Invalid fields are *SpecError; a taken name wraps ErrConflict.
func (s *Store) AddUser(ctx context.Context, nu NewUser, by Actor) (*User, error) {
	if !ValidUsername(nu.Username) {
		return nil, specErr("username", "must be %s", UsernameRule)
	}
	if !ValidRole(nu.Role) {
		return nil, specErr("role", "must be admin, operator or viewer")
	}
	if err := CheckPassword(nu.Password); err != nil {
		return nil, err
	}
	if len(nu.Language) > 16 {
		return nil, specErr("language", "must be a language code such as en or de")
	}
	var u *User
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		if u, err = tx.CreateUser(ctx, nu.Username, nu.Password, nu.Role); err != nil {
			return err
		}
		if nu.Language != "" {
			u.Language = nu.Language
			if err := tx.db(ctx).Model(u).Update("language", nu.Language).Error; err != nil {
				return fmt.Errorf("set language: %w", err)
			}
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "user.create", Object: "user/" + u.Username, Addr: by.Addr,
			Details: MustJSON(map[string]any{"role": u.Role})})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// UserChange is a change to an existing user.
type UserChange struct {
	UserUpdate
	// KeepSessionID is the session to keep when the change ends the
	// user's sessions: the session of a user changing their own password.
	KeepSessionID string
}

// ChangeUser applies ch to user id in one transaction: it validates, writes,
// ends the user's sessions when the password changes or the account is
// disabled (all but ch.KeepSessionID), and records the audit event
// (user.password for a password-only change, user.update otherwise). A
// signed-in actor cannot disable themself or drop their own admin role.
func (s *Store) ChangeUser(ctx context.Context, id int64, ch UserChange, by Actor) (*User, error) {
	up := ch.UserUpdate
	if up.Role != nil && !ValidRole(*up.Role) {
		return nil, specErr("role", "must be admin, operator or viewer")
	}
	if up.Password != nil {
		if err := CheckPassword(*up.Password); err != nil {
			return nil, err
		}
	}
	if up.Language != nil && len(*up.Language) > 16 {
		return nil, specErr("language", "must be a language code such as en or de")
	}
	if by.ID != 0 && by.ID == id {
		if up.Disabled != nil && *up.Disabled {
			return nil, specErr("disabled", "cannot be set on yourself: ask another admin")
		}
		if up.Role != nil && *up.Role != RoleAdmin {
			if cur, err := s.UserByID(ctx, id); err == nil && cur.Role == RoleAdmin {
				return nil, specErr("role", "cannot drop your own admin role: ask another admin")
			}
		}
	}
	endSessions := up.Password != nil || (up.Disabled != nil && *up.Disabled)
	var u *User
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		if u, err = tx.UpdateUser(ctx, id, up); err != nil {
			return err
		}
		if endSessions {
			if err := tx.DeleteUserSessions(ctx, id, ch.KeepSessionID); err != nil {
				return err
			}
		}
		action := "user.update"
		details := map[string]any{"role": u.Role, "disabled": u.Disabled, "password_changed": up.Password != nil, "sessions_ended": endSessions}
		if up.Password != nil && up.Role == nil && up.Disabled == nil && up.Language == nil {
			action = "user.password"
		}
		if up.Language != nil {
			details["language"] = u.Language
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: action, Object: "user/" + u.Username, Addr: by.Addr, Details: MustJSON(details)})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// IssueToken makes an API token for user u and records token.create in one
// transaction. The clear token is returned only here. Scopes beyond the
// user's role (admin for a non-admin) are refused as a *SpecError.
func (s *Store) IssueToken(ctx context.Context, u *User, name string, scopes []string, expires *time.Time, by Actor) (string, *APIToken, error) {
	sc, err := NormalizeScopes(scopes)
	if err != nil {
		return "", nil, specErr("scopes", "%v", err)
	}
	for _, x := range sc {
		if x == ScopeAdmin && u.Role != RoleAdmin {
			return "", nil, specErr("scopes", "cannot include admin: user %s is a %s, and only admins' tokens may have the admin scope", u.Username, u.Role)
		}
	}
	if len(name) > 100 {
		return "", nil, specErr("name", "must have at most 100 characters")
	}
	if expires != nil {
		if !expires.After(time.Now()) {
			return "", nil, specErr("expires_at", "must be in the future")
		}
		t := expires.UTC()
		expires = &t
	}
	var (
		tok string
		row *APIToken
	)
	err = s.Tx(ctx, func(tx *Store) error {
		var err error
		if tok, row, err = tx.CreateToken(ctx, u.ID, name, sc, expires); err != nil {
			return err
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "token.create", Object: fmt.Sprintf("token/%d", row.ID), Addr: by.Addr,
			Details: MustJSON(map[string]any{"user": u.Username, "scopes": sc, "prefix": row.Prefix})})
	})
	if err != nil {
		return "", nil, err
	}
	return tok, row, nil
}

// DeleteUser removes user id with their API tokens and sessions, audited as
// user.delete. A user who owns streams is refused with ErrInUse (their
// streams' keys and configs would be left without an owner), and so is
// the actor deleting themself.
func (s *Store) DeleteUser(ctx context.Context, id int64, by Actor) error {
	if by.ID != 0 && by.ID == id {
		return specErr("user", "cannot delete yourself: ask another admin")
	}
	return s.Tx(ctx, func(tx *Store) error {
		u, err := tx.UserByID(ctx, id)
		if err != nil {
			return err
		}
		var owned int64
		if err := tx.db(ctx).Model(&Stream{}).Where("owner_id = ?", id).Count(&owned).Error; err != nil {
			return fmt.Errorf("count streams of %s: %w", u.Username, err)
		}
		if owned > 0 {
			return fmt.Errorf("%s owns %d streams: delete them first: %w", u.Username, owned, ErrInUse)
		}
		for _, m := range []any{&APIToken{}, &Session{}} {
			if err := tx.db(ctx).Where("user_id = ?", id).Delete(m).Error; err != nil {
				return fmt.Errorf("delete %s's tokens and sessions: %w", u.Username, err)
			}
		}
		if err := tx.db(ctx).Delete(&User{}, id).Error; err != nil {
			return fmt.Errorf("delete user %s: %w", u.Username, err)
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "user.delete", Object: "user/" + u.Username, Addr: by.Addr})
	})
}
