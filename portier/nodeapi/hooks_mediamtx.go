package nodeapi

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
)

// mediamtxAuth is the body of MediaMTX's HTTP external authentication
// (authMethod: http, authHTTPAddress).
type mediamtxAuth struct {
	User     string  `json:"user"`
	Password string  `json:"password"`
	Token    string  `json:"token"`
	IP       string  `json:"ip"`
	Action   string  `json:"action"`
	Path     string  `json:"path"`
	Protocol string  `json:"protocol"`
	ID       *string `json:"id"`
	Query    string  `json:"query"`
}

// splitPath turns a MediaMTX path into app and name: "live/show" is app
// live, stream show; a path without a slash is in the default app.
func splitPath(p string) (app, name string) {
	p = strings.Trim(p, "/")
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i], p[i+1:]
	}
	return models.DefaultApp, p
}

// hookMediaMTX serves MediaMTX's HTTP authentication. A 2xx allows. MediaMTX
// treats every other status alike and itself asks RTSP/HTTP clients for
// credentials when they sent none; we answer 401 when no credentials came,
// 403 otherwise.
//
//   - publish: authorizePublish. The key may come as ?key= (query), as the
//     password (rtsp://user:KEY@host/live/show), as the token, or as the
//     path's last element (OBS style). MediaMTX cannot rename a path, so a
//     key-as-name publish stays under the key's path on that server.
//   - read, playback: authorizePlay (existing, enabled streams).
//   - api, metrics, pprof: MediaMTX's own administration. Allowed only with
//     the cluster token as password or token; exclude these actions with
//     authHTTPExclude (MediaMTX's default) to leave them to MediaMTX.
//
// MediaMTX has no unpublish hook: point its runOnUnpublish at
// /hooks/mediamtx/unpublish, optionally keep the publish confirmed from
// runOnReady with /hooks/mediamtx/ready, and set Hooks.OriginTTL for the
// mediamtx dialect as a safety net.
func (s *Server) hookMediaMTX(c *gin.Context) {
	var a mediamtxAuth
	if err := json.NewDecoder(c.Request.Body).Decode(&a); err != nil {
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, "malformed MediaMTX auth body: "+err.Error(), ""))
		return
	}
	noCreds := a.User == "" && a.Password == "" && a.Token == ""
	refuse := func(d live.Decision) {
		status := http.StatusForbidden
		if noCreds {
			status = http.StatusUnauthorized
		}
		if d.Code == live.CodeUnavailable || d.Code == live.CodeBadRequest {
			status = d.Status
		}
		c.JSON(status, hookErrBody(d.Code, d.Reason, ""))
	}
	app, name := splitPath(a.Path)
	req := live.Request{
		Dialect: live.DialectMediaMTX, Node: hookNode(c, live.DialectMediaMTX, ""), App: app, Name: name,
		Query: a.Query, Addr: a.IP, Protocol: a.Protocol,
	}
	ctx := c.Request.Context()
	switch a.Action {
	case "publish":
		req.Action = "publish"
		req.Key = a.Password
		if req.Key == "" {
			req.Key = a.Token
		}
		if d := s.lv.AuthorizePublish(ctx, req); !d.Allow {
			refuse(d)
			return
		}
		c.Status(http.StatusOK)
	case "read", "playback":
		req.Action = "play"
		if d := s.lv.AuthorizePlay(ctx, req); !d.Allow {
			refuse(d)
			return
		}
		c.Status(http.StatusOK)
	case "api", "metrics", "pprof":
		tok := s.p.ClusterToken
		ok := tok != "" && (subtle.ConstantTimeCompare([]byte(a.Password), []byte(tok)) == 1 ||
			subtle.ConstantTimeCompare([]byte(a.Token), []byte(tok)) == 1)
		if !ok {
			refuse(live.Deny(http.StatusForbidden, "admin_denied", "MediaMTX "+a.Action+" needs the cluster token as password or token"))
			return
		}
		c.Status(http.StatusOK)
	default:
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, "unknown MediaMTX action "+strconvQuote(a.Action), "action"))
	}
}

// mediamtxPath reads the path of runOnUnpublish/runOnReady calls: ?path=,
// or a form field, or a JSON body {"path": ...} (MTX_PATH in the command).
func mediamtxPath(c *gin.Context) string {
	if p := c.Query("path"); p != "" {
		return p
	}
	if strings.HasPrefix(c.ContentType(), "application/json") {
		var b struct {
			Path string `json:"path"`
		}
		if json.NewDecoder(c.Request.Body).Decode(&b) == nil {
			return b.Path
		}
		return ""
	}
	return c.PostForm("path")
}

// hookMediaMTXUnpublish ends a MediaMTX publish (idempotent). Configure it as
//
//	runOnUnpublish: curl -fsS -X POST "http://CONTROL/hooks/mediamtx/unpublish?path=$MTX_PATH&token=TOKEN"
func (s *Server) hookMediaMTXUnpublish(c *gin.Context) {
	p := mediamtxPath(c)
	if p == "" {
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, "give the MediaMTX path as ?path=$MTX_PATH", "path"))
		return
	}
	app, name := splitPath(p)
	req := live.Request{Dialect: live.DialectMediaMTX, Action: "publish_done", Node: hookNode(c, live.DialectMediaMTX, ""), App: app, Name: name}
	if err := s.lv.PublishDone(c.Request.Context(), req); err != nil {
		s.liveLog.Error("mediamtx unpublish", "err", err, "node", req.Node)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot write its database; retry", ""))
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true})
}

// hookMediaMTXReady confirms (or restores) a MediaMTX publish; call it from
// runOnReady, once or in a loop, to keep it live under Hooks.OriginTTL.
func (s *Server) hookMediaMTXReady(c *gin.Context) {
	p := mediamtxPath(c)
	if p == "" {
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, "give the MediaMTX path as ?path=$MTX_PATH", "path"))
		return
	}
	app, name := splitPath(p)
	req := live.Request{Dialect: live.DialectMediaMTX, Action: "ready", Node: hookNode(c, live.DialectMediaMTX, ""), App: app, Name: name}
	d := s.lv.ConfirmPublish(c.Request.Context(), req, true)
	if !d.Allow {
		c.JSON(d.Status, hookErrBody(d.Code, d.Reason, ""))
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true})
}
