package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TokenPrefix starts every API token, so leaked tokens are easy to find by scanning.
const TokenPrefix = "ptk_"

// tokenLookupLen is how many characters of a token (including TokenPrefix)
// are stored in clear to find its row.
const tokenLookupLen = 12

// MinPasswordLen is the shortest accepted password.
const MinPasswordLen = 8

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// UsernameRule says what a user name may look like, in the words every
// refusal uses.
const UsernameRule = "1-64 characters of A-Z a-z 0-9 _ . @ -"

// ValidRole reports whether r is a user role.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleOperator || r == RoleViewer }

// ValidUsername reports whether u is an acceptable user name.
func ValidUsername(u string) bool { return usernameRE.MatchString(u) }

// ScopeList splits the stored scopes.
func (t *APIToken) ScopeList() []string {
	if t.Scopes == "" {
		return nil
	}
	return strings.Split(t.Scopes, ",")
}

// NormalizeScopes validates and sorts scopes; an empty list means read+write.
func NormalizeScopes(in []string) ([]string, error) {
	if len(in) == 0 {
		return []string{ScopeRead, ScopeWrite}, nil
	}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != ScopeRead && s != ScopeWrite && s != ScopeAdmin {
			return nil, fmt.Errorf("unknown scope %q (scopes are read, write, admin)", s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RandomSecret returns n random bytes as unpadded URL-safe base64.
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics itself).
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// PasswordCost is bcrypt's cost for the hashes HashPassword makes. Only
// test binaries change it (modelstest lowers it to bcrypt.MinCost): under
// the race detector one check at the default cost takes 0.7 s of CPU,
// and the tests sign in hundreds of times.
var PasswordCost = bcrypt.DefaultCost

// unknownUserHash is what Authenticate checks a password against for a
// user that does not exist, so that the answer takes as long as for one
// that does: a hash of PasswordCost, made at the first such check.
var unknownUserHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), PasswordCost)
	if err != nil {
		panic(fmt.Sprintf("bcrypt: %v", err)) // only for a cost out of range
	}
	return h
})

// HashPassword hashes a password with bcrypt.
func HashPassword(pw string) (string, error) {
	if len(pw) < MinPasswordLen {
		return "", fmt.Errorf("password must have at least %d characters", MinPasswordLen)
	}
	if len(pw) > 72 {
		return "", errors.New("password must have at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), PasswordCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CreateUser adds a user with a bcrypt-hashed password.
func (s *Store) CreateUser(ctx context.Context, username, password, role string) (*User, error) {
	if !ValidUsername(username) {
		return nil, fmt.Errorf("invalid username %q: %w", username, specErr("username", "must be %s", UsernameRule))
	}
	if !ValidRole(role) {
		return nil, fmt.Errorf("invalid role %q: use admin, operator or viewer", role)
	}
	h, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &User{Username: username, PasswordHash: h, Role: role}
	if err := s.db(ctx).Create(u).Error; err != nil {
		return nil, conflict(err, "create user "+username)
	}
	return u, nil
}

// UserByID loads a user.
func (s *Store) UserByID(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := s.db(ctx).First(&u, id).Error; err != nil {
		return nil, notFound(err, "user")
	}
	return &u, nil
}

// UserByName loads a user by user name.
func (s *Store) UserByName(ctx context.Context, username string) (*User, error) {
	var u User
	if err := s.db(ctx).Where("username = ?", username).First(&u).Error; err != nil {
		return nil, notFound(err, "user "+username)
	}
	return &u, nil
}

// ListUsers lists users ordered by id.
func (s *Store) ListUsers(ctx context.Context, limit, offset int) ([]User, int64, error) {
	var (
		out   []User
		total int64
	)
	q := s.db(ctx).Model(&User{})
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	if err := q.Order("id").Limit(lim(limit)).Offset(offset).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	return out, total, nil
}

// UserUpdate holds the fields of a user to change; nil means unchanged.
type UserUpdate struct {
	Role     *string
	Disabled *bool
	Language *string
	Password *string
}

// UpdateUser changes a user.
func (s *Store) UpdateUser(ctx context.Context, id int64, up UserUpdate) (*User, error) {
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if up.Role != nil {
		if !ValidRole(*up.Role) {
			return nil, fmt.Errorf("invalid role %q: use admin, operator or viewer", *up.Role)
		}
		u.Role = *up.Role
	}
	if up.Disabled != nil {
		u.Disabled = *up.Disabled
	}
	if up.Language != nil {
		u.Language = *up.Language
	}
	if up.Password != nil {
		h, err := HashPassword(*up.Password)
		if err != nil {
			return nil, err
		}
		u.PasswordHash = h
	}
	if err := s.db(ctx).Save(u).Error; err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// Authenticate checks a user name and password. Disabled users and wrong
// passwords get ErrNoSecret (the same error, so names cannot be probed).
func (s *Store) Authenticate(ctx context.Context, username, password string) (*User, error) {
	u, err := s.UserByName(ctx, username)
	if errors.Is(err, ErrNotFound) {
		// Spend the same time as a real check.
		_ = bcrypt.CompareHashAndPassword(unknownUserHash(), []byte(password))
		return nil, ErrNoSecret
	}
	if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil || u.Disabled {
		return nil, ErrNoSecret
	}
	return u, nil
}

// EnsureAdmin creates the user "admin" when no admin exists yet. An empty
// password makes a random one. It returns the password it set (to be shown
// once) and created=false when an admin already existed.
func (s *Store) EnsureAdmin(ctx context.Context, password string) (pw string, created bool, err error) {
	var n int64
	if err := s.db(ctx).Model(&User{}).Where("role = ?", RoleAdmin).Count(&n).Error; err != nil {
		return "", false, fmt.Errorf("count admins: %w", err)
	}
	if n > 0 {
		return "", false, nil
	}
	if password == "" {
		password = RandomSecret(15)
	}
	if _, err := s.CreateUser(ctx, "admin", password, RoleAdmin); err != nil {
		if errors.Is(err, ErrConflict) {
			// Another replica starting at the same time created it first.
			return "", false, nil
		}
		return "", false, err
	}
	return password, true, nil
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// CreateToken makes a new API token for a user. The clear token is returned
// only here; the database keeps its SHA-256 hash. A nil expiry never expires.
func (s *Store) CreateToken(ctx context.Context, userID int64, name string, scopes []string, expires *time.Time) (string, *APIToken, error) {
	sc, err := NormalizeScopes(scopes)
	if err != nil {
		return "", nil, err
	}
	if len(name) > 100 {
		return "", nil, errors.New("token name must have at most 100 characters")
	}
	tok := TokenPrefix + RandomSecret(32)
	t := &APIToken{UserID: userID, Name: name, Prefix: tok[:tokenLookupLen], Hash: hashToken(tok), Scopes: strings.Join(sc, ","), ExpiresAt: expires}
	if err := s.db(ctx).Create(t).Error; err != nil {
		return "", nil, conflict(err, "create token")
	}
	return tok, t, nil
}

// TokenAuth finds the user behind a clear token. Unknown, revoked and expired
// tokens, and tokens of disabled users, return ErrNoSecret. It records the use.
func (s *Store) TokenAuth(ctx context.Context, tok string) (*APIToken, *User, error) {
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) < tokenLookupLen+8 || len(tok) > 200 {
		return nil, nil, ErrNoSecret
	}
	var rows []APIToken
	if err := s.db(ctx).Where("prefix = ?", tok[:tokenLookupLen]).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("look up token: %w", err)
	}
	want := hashToken(tok)
	now := time.Now().UTC()
	for i := range rows {
		t := &rows[i]
		if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(want)) != 1 {
			continue
		}
		if t.RevokedAt != nil || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
			return nil, nil, ErrNoSecret
		}
		u, err := s.UserByID(ctx, t.UserID)
		if err != nil || u.Disabled {
			return nil, nil, ErrNoSecret
		}
		// Record the use at most once a minute per token, to spare writes.
		if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
			s.db(ctx).Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", now)
			t.LastUsedAt = &now
		}
		return t, u, nil
	}
	return nil, nil, ErrNoSecret
}

// ListTokens lists a user's tokens (without secrets), newest first.
func (s *Store) ListTokens(ctx context.Context, userID int64) ([]APIToken, error) {
	var out []APIToken
	if err := s.db(ctx).Where("user_id = ?", userID).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes one of a user's tokens (idempotent).
func (s *Store) RevokeToken(ctx context.Context, userID, tokenID int64) (*APIToken, error) {
	var t APIToken
	if err := s.db(ctx).Where("id = ? AND user_id = ?", tokenID, userID).First(&t).Error; err != nil {
		return nil, notFound(err, "token")
	}
	if t.RevokedAt == nil {
		now := time.Now().UTC()
		if err := s.db(ctx).Model(&t).Update("revoked_at", now).Error; err != nil {
			return nil, fmt.Errorf("revoke token: %w", err)
		}
		t.RevokedAt = &now
	}
	return &t, nil
}
