package nodeapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/portier/live"
)

// HookParams configures the hook endpoints that media servers call:
// /hooks/srs, /hooks/nginx-rtmp, /hooks/mediamtx and the native
// /internal/v1 node API.
type HookParams struct {
	// Allow maps a dialect ("srs", "nginx-rtmp", "mediamtx", "native") to
	// the source networks whose calls are accepted without the cluster token.
	Allow map[string][]netip.Prefix
	// OriginTTL maps a dialect to how long a publish reported through its
	// hooks stays live without being confirmed (nginx-rtmp's on_update,
	// MediaMTX's runOnReady calling /hooks/mediamtx/ready). Zero or absent:
	// live until the unpublish hook. Nodes that heartbeat (our relays) are
	// covered by the heartbeat reaper instead.
	OriginTTL map[string]time.Duration
}

// maxHookBody bounds every hook and node API request body.
const maxHookBody = 1 << 20

func (s *Server) registerHooks(r *gin.Engine) {
	g := r.Group("/hooks")
	g.POST("/srs", s.hookAuth(live.DialectSRS, true), s.hookSRS)
	nginx := s.hookAuth(live.DialectNginx, true)
	g.POST("/nginx-rtmp", nginx, s.hookNginx)
	g.GET("/nginx-rtmp", nginx, s.hookNginx) // notify_method get
	mtx := s.hookAuth(live.DialectMediaMTX, true)
	g.POST("/mediamtx", mtx, s.hookMediaMTX)
	g.POST("/mediamtx/unpublish", mtx, s.hookMediaMTXUnpublish)
	g.POST("/mediamtx/ready", mtx, s.hookMediaMTXReady)
}

// hookAuth admits a caller that presents the cluster token (Authorization:
// Bearer, or ?token= when queryToken) or comes from an allow-listed network
// of the dialect (--hook-allow). Loopback is not trusted by itself.
func (s *Server) hookAuth(dialect string, queryToken bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxHookBody)
		if s.callerTrusted(c.Request, dialect, queryToken) {
			c.Next()
			return
		}
		msg := "this endpoint needs the cluster token: send Authorization: Bearer TOKEN"
		if queryToken {
			msg += " or add ?token=TOKEN to the hook URL"
		}
		msg += ", or allow the caller's address for the " + dialect + " dialect"
		s.liveLog.Warn("unauthenticated hook call", "dialect", dialect, "addr", c.Request.RemoteAddr, "path", c.Request.URL.Path)
		c.AbortWithStatusJSON(http.StatusUnauthorized, hookErrBody("unauthenticated", msg, ""))
	}
}

func (s *Server) callerTrusted(r *http.Request, dialect string, queryToken bool) bool {
	if tok := s.p.ClusterToken; tok != "" {
		got := ""
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			got = strings.TrimPrefix(h, "Bearer ")
		} else if queryToken {
			got = r.URL.Query().Get("token")
		}
		if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
			return true
		}
	}
	ip, ok := remoteIP(r)
	if !ok {
		return false
	}
	for _, p := range s.p.Hooks.Allow[dialect] {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// remoteIP is the address of the TCP peer (never a forwarded-for header:
// hooks come straight from media servers).
func remoteIP(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// hookNode names the media server behind a hook call: "<dialect>:<id>",
// where id is ?node= on the hook URL when set (name your servers so their
// live state survives address changes), else fallback (SRS's server_id),
// else the caller's IP address.
func hookNode(c *gin.Context, dialect, fallback string) string {
	id := c.Query("node")
	if !nodeNameRE.MatchString(id) {
		id = fallback
	}
	if !nodeNameRE.MatchString(id) {
		if ip, ok := remoteIP(c.Request); ok {
			id = ip.String()
		} else {
			id = "unknown"
		}
	}
	return dialect + ":" + id
}

// hookErrBody is the error body of every JSON endpoint.
func hookErrBody(code, msg, field string) nodewire.ErrorBody {
	return nodewire.NewError(code, msg, field)
}
