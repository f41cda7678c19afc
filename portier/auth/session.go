package auth

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/httperr"
)

// Web UI sessions: the browser holds a random secret in an HttpOnly,
// SameSite=Lax cookie (Secure over TLS); the database holds its SHA-256 and
// the session's CSRF token (see models.Session). Every unsafe request of a
// session, UI form or API call alike, must carry that CSRF token (form field
// _csrf or header X-CSRF-Token). Before sign-in, the login form is protected
// by a double-submit cookie.
const (
	SessionCookie   = "portier_session"
	LoginCSRFCookie = "portier_login_csrf"
	CSRFField       = "_csrf"
	CSRFHeader      = "X-CSRF-Token"
	SessionTTL      = 12 * time.Hour
	sessionKey      = "portier.session"
	loginCSRFMaxAge = 3600
)

// secureRequest reports whether the browser reached us over TLS, directly
// or through a proxy that says so in X-Forwarded-Proto. Unlike the client
// address, this header is believed from any peer: it can only make cookies
// stricter (Secure), so a forged one hurts only its sender, and a TLS proxy
// left out of --trusted-proxies still gets Secure cookies.
func secureRequest(c *gin.Context) bool {
	return c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https"
}

// SetCookie sets an HttpOnly, SameSite=Lax cookie (Secure over TLS).
func SetCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secureRequest(c), SameSite: http.SameSiteLaxMode,
	})
}

// LoadSession finds the request's session and user, or returns nil.
func (a *Authenticator) LoadSession(c *gin.Context) (*models.Session, *models.User) {
	if v, ok := c.Get(sessionKey); ok {
		se := v.(*models.Session)
		return se, PrincipalOf(c).User
	}
	ck, err := c.Cookie(SessionCookie)
	if err != nil || ck == "" {
		return nil, nil
	}
	se, u, err := a.st.SessionBySecret(c.Request.Context(), ck, SessionTTL)
	if err != nil {
		if !errors.Is(err, models.ErrNoSecret) {
			a.log.Error("load session", "err", err)
		}
		return nil, nil
	}
	return se, u
}

// SessionPrincipal authenticates API requests that carry a UI session
// cookie (the default SessionFunc). Unsafe methods must carry
// the session's CSRF token in X-CSRF-Token.
func (a *Authenticator) SessionPrincipal(c *gin.Context) (*Principal, error) {
	se, u := a.LoadSession(c)
	if se == nil {
		return nil, nil
	}
	if UnsafeMethod(c.Request.Method) && !TokenEqual(c.GetHeader(CSRFHeader), se.CSRFToken) {
		return nil, httperr.Forbidden("requests with a session cookie must send the session's CSRF token in " + CSRFHeader)
	}
	return &Principal{User: u, Scopes: []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}, Via: "session"}, nil
}

// UnsafeMethod reports whether m changes state (and so needs a CSRF token).
func UnsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// TokenEqual compares two non-empty tokens in constant time.
func TokenEqual(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// LoginCSRF returns the double-submit token for the sign-in form, setting
// its cookie when the browser has none yet.
func (a *Authenticator) LoginCSRF(c *gin.Context) string {
	if ck, err := c.Cookie(LoginCSRFCookie); err == nil && len(ck) >= 32 && len(ck) <= 64 {
		return ck
	}
	tok := models.RandomSecret(32)
	SetCookie(c, LoginCSRFCookie, tok, loginCSRFMaxAge)
	return tok
}

// StartSession signs a user in: a new session (never a reused id) and its cookie.
func (a *Authenticator) StartSession(c *gin.Context, u *models.User) error {
	secret, _, err := a.st.CreateSession(c.Request.Context(), u.ID, c.Request.UserAgent(), ClientAddr(c), SessionTTL)
	if err != nil {
		return err
	}
	SetCookie(c, SessionCookie, secret, int(SessionTTL/time.Second))
	SetCookie(c, LoginCSRFCookie, "", -1)
	return nil
}

// EndSession signs the request's session out.
func (a *Authenticator) EndSession(c *gin.Context) {
	if ck, err := c.Cookie(SessionCookie); err == nil && ck != "" {
		if err := a.st.DeleteSession(c.Request.Context(), ck); err != nil {
			a.log.Error("delete session", "err", err)
		}
	}
	SetCookie(c, SessionCookie, "", -1)
}

// CurrentSession is the request's session (nil when signed out).
func CurrentSession(c *gin.Context) *models.Session {
	if v, ok := c.Get(sessionKey); ok {
		return v.(*models.Session)
	}
	return nil
}

// SetSession records the request's session (for CurrentSession and
// LoadSession); the UI's session middleware sets it with the principal.
func SetSession(c *gin.Context, se *models.Session) { c.Set(sessionKey, se) }
