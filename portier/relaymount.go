package portier

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/httperr"
)

// MountRelay serves an embedded relay's HTTP handler under /relay/
// (`portier run`). Its API (/relay/api/...), which shows publishers'
// addresses, needs the cluster token as Authorization: Bearer, or an
// admin: a UI session or an admin's API token with the read scope. Its metrics and
// probes are open like every role's. Loopback is not trusted here: a
// browser on the same machine is not the cluster.
func (s *Server) MountRelay(h http.Handler) {
	h = http.StripPrefix("/relay", h)
	s.relay.Store(&h)
}

// relayMount is the handler MountRelay set (nil before).
type relayMount = atomic.Pointer[http.Handler]

func (s *Server) registerRelayMount(r *gin.Engine) {
	r.Any("/relay/*path", s.serveRelay)
}

func (s *Server) serveRelay(c *gin.Context) {
	h := s.relay.Load()
	if h == nil {
		s.fail(c, httperr.NotFound("relay"))
		return
	}
	if strings.HasPrefix(c.Param("path"), "/api/") && !s.clusterBearer(c.Request) {
		p, err := s.auth.FindPrincipal(c)
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="portier"`)
			s.fail(c, err)
			return
		}
		// A read of operational data: the admin role and the read scope
		// (the admin scope guards user administration).
		if !p.IsAdmin() || !p.HasScope(models.ScopeRead) {
			s.fail(c, httperr.Forbidden("the relay API needs the admin role or the cluster token"))
			return
		}
	}
	(*h).ServeHTTP(c.Writer, c.Request)
}

// clusterBearer reports whether r carries the cluster token as
// Authorization: Bearer.
func (s *Server) clusterBearer(r *http.Request) bool {
	tok := s.p.ClusterToken
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return tok != "" && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(tok)) == 1
}
