package models

import (
	"context"
	"fmt"
	"time"
)

// Session is a signed-in web UI session. ID is the SHA-256 (hex) of the
// secret kept in the browser's cookie; the clear secret is never stored, so a
// database dump does not let anyone sign in. CSRFToken is the synchronizer
// token every form of the session must carry.
type Session struct {
	ID         string `gorm:"primaryKey"`
	UserID     int64
	CSRFToken  string `gorm:"column:csrf_token"`
	UserAgent  string
	Addr       string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// sessionTouchEvery limits how often a session's last-seen time is written.
const sessionTouchEvery = time.Minute

// CreateSession starts a session for a user that lasts ttl after its last
// use. It returns the clear secret for the cookie (only here) and the row.
func (s *Store) CreateSession(ctx context.Context, userID int64, userAgent, addr string, ttl time.Duration) (string, *Session, error) {
	if len(userAgent) > 256 {
		userAgent = userAgent[:256]
	}
	secret := RandomSecret(32)
	now := time.Now().UTC()
	se := &Session{
		ID: hashToken(secret), UserID: userID, CSRFToken: RandomSecret(32),
		UserAgent: userAgent, Addr: addr, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.db(ctx).Create(se).Error; err != nil {
		return "", nil, fmt.Errorf("create session: %w", err)
	}
	return secret, se, nil
}

// SessionBySecret finds the live session behind a cookie secret and its
// user. Unknown and expired sessions, and sessions of disabled users, return
// ErrNoSecret. A use extends the session to ttl from now (written at most
// once a minute).
func (s *Store) SessionBySecret(ctx context.Context, secret string, ttl time.Duration) (*Session, *User, error) {
	if secret == "" || len(secret) > 200 {
		return nil, nil, ErrNoSecret
	}
	var se Session
	res := s.db(ctx).Where("id = ?", hashToken(secret)).Limit(1).Find(&se)
	if res.Error != nil {
		return nil, nil, fmt.Errorf("look up session: %w", res.Error)
	}
	now := time.Now().UTC()
	if res.RowsAffected == 0 || !now.Before(se.ExpiresAt) {
		return nil, nil, ErrNoSecret
	}
	u, err := s.UserByID(ctx, se.UserID)
	if err != nil || u.Disabled {
		return nil, nil, ErrNoSecret
	}
	if now.Sub(se.LastSeenAt) > sessionTouchEvery {
		se.LastSeenAt, se.ExpiresAt = now, now.Add(ttl)
		err := s.db(ctx).Model(&Session{}).Where("id = ?", se.ID).
			Updates(map[string]any{"last_seen_at": se.LastSeenAt, "expires_at": se.ExpiresAt}).Error
		if err != nil {
			return nil, nil, fmt.Errorf("touch session: %w", err)
		}
	}
	return &se, u, nil
}

// DeleteSession ends the session behind a cookie secret (idempotent).
func (s *Store) DeleteSession(ctx context.Context, secret string) error {
	if err := s.db(ctx).Where("id = ?", hashToken(secret)).Delete(&Session{}).Error; err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user except the one whose ID is
// keepID (empty: end all). A password change or a disabled account uses it.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64, keepID string) error {
	q := s.db(ctx).Where("user_id = ?", userID)
	if keepID != "" {
		q = q.Where("id <> ?", keepID)
	}
	if err := q.Delete(&Session{}).Error; err != nil {
		return fmt.Errorf("delete sessions of user %d: %w", userID, err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions that expired before now and reports
// how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res := s.db(ctx).Where("expires_at < ?", now.UTC()).Delete(&Session{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", res.Error)
	}
	return res.RowsAffected, nil
}
