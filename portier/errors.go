package portier

import (
	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
)

// Principal is who makes an API request (portier/auth).
type Principal = auth.Principal

// SessionAuthenticator finds the principal of a request from a UI session
// cookie (auth.SessionFunc).
type SessionAuthenticator = auth.SessionFunc

// SetSessionAuthenticator replaces how the API authenticates UI session
// cookies (Bearer tokens are always tried first); tests use it.
func (s *Server) SetSessionAuthenticator(f SessionAuthenticator) { s.auth.SetSessionFunc(f) }

// fail answers err with the one error body (httperr.Fail) and aborts.
func (s *Server) fail(c *gin.Context, err error) { httperr.Fail(c, s.log, err) }
