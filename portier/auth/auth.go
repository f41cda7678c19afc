// Package auth finds who makes a request to the REST API or the web UI (a
// Principal, from an API token or a UI session cookie), starts and ends UI
// sessions with their CSRF tokens, and names the client's address and the
// audit actor. It is shared by portier/api and portier/ui.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/httperr"
)

// Principal is who makes an API request: a user, through an API token (with
// its scopes) or a UI session (all scopes, limited only by the user's role).
type Principal struct {
	User    *models.User
	Scopes  []string
	TokenID int64  // 0 for sessions
	Via     string // "token" or "session"
}

// HasScope reports whether the principal's credentials carry scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// IsAdmin reports whether the principal is an admin user.
func (p *Principal) IsAdmin() bool { return p.User.Role == models.RoleAdmin }

// CanWrite reports whether the principal's role may change streams.
func (p *Principal) CanWrite() bool { return p.User.Role != models.RoleViewer }

// SeesAllStreams reports whether the principal may read every stream
// (admins and viewers) rather than only its own (operators).
func (p *Principal) SeesAllStreams() bool { return p.User.Role != models.RoleOperator }

// Owns reports whether the principal owns stream st.
func (p *Principal) Owns(st *models.Stream) bool { return st.OwnerID == p.User.ID }

// SessionFunc finds the principal of a request from a UI session cookie.
// It returns (nil, nil) when the request carries no session. For unsafe
// methods it must also have checked the CSRF token.
type SessionFunc func(c *gin.Context) (*Principal, error)

// Params configures an Authenticator.
type Params struct {
	Store  *models.Store
	Logger *slog.Logger
}

// Authenticator finds who makes a request: an API token (Bearer) or a UI
// session cookie; it also starts and ends the sessions (session.go).
type Authenticator struct {
	st      *models.Store
	log     *slog.Logger
	session SessionFunc
}

// New builds an Authenticator. Session cookies authenticate API requests
// too (SessionPrincipal) unless SetSessionFunc says otherwise.
func New(p Params) *Authenticator {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	a := &Authenticator{st: p.Store, log: p.Logger}
	a.session = a.SessionPrincipal
	return a
}

// SetSessionFunc replaces how API requests are authenticated from a UI
// session (Bearer tokens are always tried first); nil: not at all.
func (a *Authenticator) SetSessionFunc(f SessionFunc) { a.session = f }

const principalKey = "portier.principal"

// SetPrincipal records the request's principal (for PrincipalOf).
func SetPrincipal(c *gin.Context, p *Principal) { c.Set(principalKey, p) }

// PrincipalOf returns the authenticated principal of the request (set by
// Authenticate or the UI's session middleware), or nil.
func PrincipalOf(c *gin.Context) *Principal {
	if v, ok := c.Get(principalKey); ok {
		if p, ok := v.(*Principal); ok {
			return p
		}
	}
	return nil
}

// Authenticate is the API middleware: it finds the principal from a Bearer
// token or, failing that, a UI session, and enforces token scopes: read for
// GET/HEAD, write for every change. Role checks are per handler.
func (a *Authenticator) Authenticate(c *gin.Context) {
	p, err := a.FindPrincipal(c)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="portier"`)
		httperr.Fail(c, a.log, err)
		return
	}
	need := models.ScopeWrite
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		need = models.ScopeRead
	}
	if !p.HasScope(need) {
		httperr.Fail(c, a.log, httperr.Forbidden("this token lacks the "+need+" scope"))
		return
	}
	SetPrincipal(c, p)
	c.Next()
}

// FindPrincipal finds the principal of the request from a Bearer token or,
// failing that, a UI session (an error when neither authenticates).
func (a *Authenticator) FindPrincipal(c *gin.Context) (*Principal, error) {
	unauth := func(msg string) error { return httperr.New(http.StatusUnauthorized, httperr.CodeUnauthorized, "", msg) }
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, unauth("use Authorization: Bearer <API token>")
		}
		t, u, err := a.st.TokenAuth(c.Request.Context(), strings.TrimSpace(tok))
		if errors.Is(err, models.ErrNoSecret) {
			return nil, unauth("the API token is unknown, expired or revoked, or its user is disabled")
		}
		if err != nil {
			return nil, err
		}
		return &Principal{User: u, Scopes: t.ScopeList(), TokenID: t.ID, Via: "token"}, nil
	}
	if a.session != nil {
		p, err := a.session(c)
		if err != nil {
			return nil, err
		}
		if p != nil {
			if p.Scopes == nil {
				p.Scopes = []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}
			}
			p.Via = "session"
			return p, nil
		}
	}
	return nil, unauth("authentication required: send Authorization: Bearer <API token>")
}

// RequireAdmin is middleware for user administration: the admin role and,
// for tokens, the admin scope.
func (a *Authenticator) RequireAdmin(c *gin.Context) {
	p := PrincipalOf(c)
	if p == nil || !p.IsAdmin() {
		httperr.Fail(c, a.log, httperr.Forbidden("this needs the admin role"))
		return
	}
	if !p.HasScope(models.ScopeAdmin) {
		httperr.Fail(c, a.log, httperr.Forbidden("this token lacks the admin scope"))
		return
	}
	c.Next()
}

// RequireWriter is middleware for changes to streams and their configs:
// viewers are read-only.
func (a *Authenticator) RequireWriter(c *gin.Context) {
	if p := PrincipalOf(c); p == nil || !p.CanWrite() {
		httperr.Fail(c, a.log, httperr.Forbidden("viewers have read-only access"))
		return
	}
	c.Next()
}

// ErrOtherOwner is the answer of Stream for a stream that exists but
// belongs to another operator, whom the principal may not see.
var ErrOtherOwner = errors.New("this stream belongs to another operator")

// Stream loads stream id for p with the visibility rules of Principal
// (SeesAllStreams, Owns): httperr.NotFound when it does not exist,
// ErrOtherOwner when p may not see it. The REST API answers the second
// with 404 too, so ids leak nothing; the UI says it plainly (403), since
// ids are visible in links anyway.
func (a *Authenticator) Stream(ctx context.Context, p *Principal, id int64) (*models.Stream, error) {
	st, err := a.st.StreamByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, httperr.NotFound("stream")
	}
	if err != nil {
		return nil, err
	}
	if !p.SeesAllStreams() && !p.Owns(st) {
		return nil, ErrOtherOwner
	}
	return st, nil
}

// Actor is who makes the request, for the audit events of the write paths
// (portier/core).
func Actor(c *gin.Context) core.Actor {
	a := core.Actor{Addr: ClientAddr(c)}
	if p := PrincipalOf(c); p != nil {
		a.Name, a.ID = p.User.Username, p.User.ID
	}
	return a
}

// ClientAddr is the address of the client behind the request: the TCP
// peer, or, when the peer is a trusted proxy, the address it forwarded
// (gin walks X-Forwarded-For from the right, skipping trusted proxies; the
// engine's trusted proxies are Params.Security.TrustedProxies of package
// portier). It is the one function that answers "who is this": nothing
// else reads those headers.
func ClientAddr(c *gin.Context) string { return c.ClientIP() }
