package portier

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
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

// SessionAuthenticator finds the principal of a request from a UI session
// cookie. It returns (nil, nil) when the request carries no session. For
// unsafe methods it must also have checked the CSRF token.
type SessionAuthenticator func(c *gin.Context) (*Principal, error)

// SetSessionAuthenticator lets the web UI add cookie sessions to the API's
// authentication (Bearer tokens are always tried first).
func (s *Server) SetSessionAuthenticator(f SessionAuthenticator) { s.sessionAuth = f }

const principalKey = "portier.principal"

// principal returns the authenticated principal of the request (set by
// s.authenticate), or nil.
func (s *Server) principal(c *gin.Context) *Principal {
	if v, ok := c.Get(principalKey); ok {
		if p, ok := v.(*Principal); ok {
			return p
		}
	}
	return nil
}

// authenticate is the API middleware: it finds the principal from a Bearer
// token or, failing that, a UI session, and enforces token scopes: read for
// GET/HEAD, write for every change. Role checks are per handler.
func (s *Server) authenticate(c *gin.Context) {
	p, err := s.findPrincipal(c)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="portier"`)
		s.fail(c, err)
		return
	}
	need := models.ScopeWrite
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		need = models.ScopeRead
	}
	if !p.HasScope(need) {
		s.fail(c, errForbidden("this token lacks the "+need+" scope"))
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func (s *Server) findPrincipal(c *gin.Context) (*Principal, error) {
	unauth := func(msg string) error { return apiErr(http.StatusUnauthorized, codeUnauthorized, "", msg) }
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, unauth("use Authorization: Bearer <API token>")
		}
		t, u, err := s.p.Store.TokenAuth(c.Request.Context(), strings.TrimSpace(tok))
		if errors.Is(err, models.ErrNoSecret) {
			return nil, unauth("the API token is unknown, expired or revoked, or its user is disabled")
		}
		if err != nil {
			return nil, err
		}
		return &Principal{User: u, Scopes: t.ScopeList(), TokenID: t.ID, Via: "token"}, nil
	}
	if s.sessionAuth != nil {
		p, err := s.sessionAuth(c)
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

// requireAdmin is middleware for user administration: the admin role and,
// for tokens, the admin scope.
func (s *Server) requireAdmin(c *gin.Context) {
	p := s.principal(c)
	if p == nil || !p.IsAdmin() {
		s.fail(c, errForbidden("this needs the admin role"))
		return
	}
	if !p.HasScope(models.ScopeAdmin) {
		s.fail(c, errForbidden("this token lacks the admin scope"))
		return
	}
	c.Next()
}

// requireWriter is middleware for changes to streams and their configs:
// viewers are read-only.
func (s *Server) requireWriter(c *gin.Context) {
	if p := s.principal(c); p == nil || !p.CanWrite() {
		s.fail(c, errForbidden("viewers have read-only access"))
		return
	}
	c.Next()
}
