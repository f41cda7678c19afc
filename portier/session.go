package portier

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
)

// Web UI sessions: the browser holds a random secret in an HttpOnly,
// SameSite=Lax cookie (Secure over TLS); the database holds its SHA-256 and
// the session's CSRF token (see models.Session). Every unsafe request of a
// session, UI form or API call alike, must carry that CSRF token (form field
// _csrf or header X-CSRF-Token). Before sign-in, the login form is protected
// by a double-submit cookie.
const (
	sessionCookie   = "portier_session"
	loginCSRFCookie = "portier_login_csrf"
	csrfField       = "_csrf"
	csrfHeader      = "X-CSRF-Token"
	sessionTTL      = 12 * time.Hour
	uiMaxFormBytes  = 64 << 10
	sessionKey      = "portier.session"
	loginCSRFMaxAge = 3600
)

// errCSRF is the refusal of an unsafe request without a valid CSRF token.
var errCSRF = errors.New("the form's security token is missing or stale: reload the page and try again")

// secureRequest reports whether the browser reached us over TLS, directly
// or through a proxy that says so in X-Forwarded-Proto. Unlike the client
// address, this header is believed from any peer: it can only make cookies
// stricter (Secure), so a forged one hurts only its sender, and a TLS proxy
// left out of --trusted-proxies still gets Secure cookies.
func (s *Server) secureRequest(c *gin.Context) bool {
	return c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https"
}

func (s *Server) setCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secureRequest(c), SameSite: http.SameSiteLaxMode,
	})
}

// loadSession finds the request's session and user, or returns nil.
func (s *Server) loadSession(c *gin.Context) (*models.Session, *models.User) {
	if v, ok := c.Get(sessionKey); ok {
		se := v.(*models.Session)
		return se, s.principal(c).User
	}
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck == "" {
		return nil, nil
	}
	se, u, err := s.p.Store.SessionBySecret(rctx(c), ck, sessionTTL)
	if err != nil {
		if !errors.Is(err, models.ErrNoSecret) {
			s.log.Error("load session", "err", err)
		}
		return nil, nil
	}
	return se, u
}

// sessionPrincipal authenticates API requests that carry a UI session
// cookie (installed with SetSessionAuthenticator). Unsafe methods must carry
// the session's CSRF token in X-CSRF-Token.
func (s *Server) sessionPrincipal(c *gin.Context) (*Principal, error) {
	se, u := s.loadSession(c)
	if se == nil {
		return nil, nil
	}
	if unsafeMethod(c.Request.Method) && !tokenEqual(c.GetHeader(csrfHeader), se.CSRFToken) {
		return nil, errForbidden("requests with a session cookie must send the session's CSRF token in " + csrfHeader)
	}
	return &Principal{User: u, Scopes: []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}, Via: "session"}, nil
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

func tokenEqual(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// uiSession is the UI middleware that loads the session (if any) and sets
// the principal, so the API's authorisation helpers serve the UI too.
func (s *Server) uiSession(c *gin.Context) {
	se, u := s.loadSession(c)
	if se != nil {
		c.Set(sessionKey, se)
		c.Set(principalKey, &Principal{User: u, Scopes: []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}, Via: "session"})
	}
	c.Next()
}

// uiCSRF refuses unsafe requests whose CSRF token does not match the
// session's (or, before sign-in, the login cookie's) with a 403 page.
func (s *Server) uiCSRF(c *gin.Context) {
	if !unsafeMethod(c.Request.Method) {
		c.Next()
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, uiMaxFormBytes)
	got := c.GetHeader(csrfHeader)
	if got == "" {
		got = c.PostForm(csrfField)
	}
	want := ""
	if v, ok := c.Get(sessionKey); ok {
		want = v.(*models.Session).CSRFToken
	} else if ck, err := c.Cookie(loginCSRFCookie); err == nil {
		want = ck
	}
	if !tokenEqual(got, want) {
		s.log.Info("ui: refused a request without a valid CSRF token", "method", c.Request.Method, "path", c.Request.URL.Path, "addr", s.clientAddr(c))
		s.uiError(c, http.StatusForbidden, errCSRF)
		c.Abort()
		return
	}
	c.Next()
}

// loginCSRF returns the double-submit token for the sign-in form, setting
// its cookie when the browser has none yet.
func (s *Server) loginCSRF(c *gin.Context) string {
	if ck, err := c.Cookie(loginCSRFCookie); err == nil && len(ck) >= 32 && len(ck) <= 64 {
		return ck
	}
	tok := models.RandomSecret(32)
	s.setCookie(c, loginCSRFCookie, tok, loginCSRFMaxAge)
	return tok
}

// startSession signs a user in: a new session (never a reused id) and its cookie.
func (s *Server) startSession(c *gin.Context, u *models.User) error {
	secret, _, err := s.p.Store.CreateSession(rctx(c), u.ID, c.Request.UserAgent(), s.clientAddr(c), sessionTTL)
	if err != nil {
		return err
	}
	s.setCookie(c, sessionCookie, secret, int(sessionTTL/time.Second))
	s.setCookie(c, loginCSRFCookie, "", -1)
	return nil
}

// endSession signs the request's session out.
func (s *Server) endSession(c *gin.Context) {
	if ck, err := c.Cookie(sessionCookie); err == nil && ck != "" {
		if err := s.p.Store.DeleteSession(rctx(c), ck); err != nil {
			s.log.Error("delete session", "err", err)
		}
	}
	s.setCookie(c, sessionCookie, "", -1)
}

// currentSession is the request's session (nil when signed out).
func currentSession(c *gin.Context) *models.Session {
	if v, ok := c.Get(sessionKey); ok {
		return v.(*models.Session)
	}
	return nil
}
