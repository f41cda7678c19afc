package ui

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
)

// Sessions and their CSRF tokens are portier/auth's (auth.Authenticator);
// these are the UI's middleware around them.

// uiMaxFormBytes bounds the body of a UI form.
const uiMaxFormBytes = 64 << 10

// errCSRF is the refusal of an unsafe request without a valid CSRF token.
var errCSRF = errors.New("the form's security token is missing or stale: reload the page and try again")

// uiSession is the UI middleware that loads the session (if any) and sets
// the principal, so the API's authorisation helpers serve the UI too.
func (s *Server) uiSession(c *gin.Context) {
	se, u := s.auth.LoadSession(c)
	if se != nil {
		auth.SetSession(c, se)
		auth.SetPrincipal(c, &auth.Principal{User: u, Scopes: []string{models.ScopeRead, models.ScopeWrite, models.ScopeAdmin}, Via: "session"})
	}
	c.Next()
}

// uiCSRF refuses unsafe requests whose CSRF token does not match the
// session's (or, before sign-in, the login cookie's) with a 403 page.
func (s *Server) uiCSRF(c *gin.Context) {
	if !auth.UnsafeMethod(c.Request.Method) {
		c.Next()
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, uiMaxFormBytes)
	got := c.GetHeader(auth.CSRFHeader)
	if got == "" {
		got = c.PostForm(auth.CSRFField)
	}
	want := ""
	if se := auth.CurrentSession(c); se != nil {
		want = se.CSRFToken
	} else if ck, err := c.Cookie(auth.LoginCSRFCookie); err == nil {
		want = ck
	}
	if !auth.TokenEqual(got, want) {
		s.log.Info("ui: refused a request without a valid CSRF token", "method", c.Request.Method, "path", c.Request.URL.Path, "addr", auth.ClientAddr(c))
		s.uiError(c, http.StatusForbidden, errCSRF)
		c.Abort()
		return
	}
	c.Next()
}
