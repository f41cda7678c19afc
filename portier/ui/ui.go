package ui

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/web"
	"github.com/portier/portier/web/i18n"
	"github.com/portier/portier/web/views"
)

// Register adds the operator web UI to r: server-rendered templ pages
// (handlers → store, through view models), htmx partials for live parts,
// static assets embedded from web/static, and the answer to unknown paths
// (NoRoute). Authorisation is the API's (auth.Principal, the loadStream
// rules); sessions and CSRF tokens are portier/auth's (the middleware is in
// session.go).
func (s *Server) Register(r *gin.Engine) {
	if missing := web.VendorMissing(); len(missing) > 0 {
		s.log.Warn("web UI: front-end libraries were not built into this binary; live updates and the preview player will not work (build with make)", "missing", missing)
	}
	r.GET("/static/*path", s.uiSecurityHeaders, s.uiStatic)

	g := r.Group("/", s.uiSecurityHeaders, s.uiSession, s.uiCSRF)
	g.GET("/login", s.uiLoginForm)
	g.POST("/login", s.uiLogin)
	g.POST("/logout", s.uiLogout)

	a := g.Group("/", s.uiRequireUser)
	a.GET("/", s.uiDashboard)
	a.GET("/dashboard/panel", s.uiDashboardPanel)
	a.GET("/account", s.uiAccount)
	a.POST("/account/password", s.uiChangePassword)
	a.POST("/account/language", s.uiSetLanguage)

	a.GET("/streams", s.uiStreams)
	a.GET("/streams/table", s.uiStreamsTable)
	a.POST("/streams", s.uiCreateStream)
	a.GET("/streams/:id", s.uiStream)
	a.GET("/streams/:id/live", s.uiStreamLive)
	a.GET("/streams/:id/ingest", s.uiStreamIngest)
	a.GET("/streams/:id/tasks", s.uiStreamTasks)
	a.GET("/streams/:id/thumbnail", s.uiStreamThumbnailBlock)
	a.GET("/streams/:id/thumbnail.jpg", s.uiStreamThumbnail)
	a.POST("/streams/:id/enabled", s.uiStreamEnabled)
	a.GET("/streams/:id/recordings/:name", s.uiRecording)
	a.POST("/streams/:id/recordings/:name/delete", s.uiDeleteRecording)
	a.GET("/streams/:id/rotate-key", s.uiRotateKeyConfirm)
	a.POST("/streams/:id/rotate-key", s.uiRotateKey)
	a.GET("/streams/:id/kick", s.uiKickConfirm)
	a.POST("/streams/:id/kick", s.uiKick)
	a.GET("/streams/:id/delete", s.uiDeleteStreamConfirm)
	a.POST("/streams/:id/delete", s.uiDeleteStream)

	a.GET("/streams/:id/configs/new", s.uiNewConfig)
	a.POST("/streams/:id/configs", s.uiCreateConfig)
	a.GET("/streams/:id/configs/:cid", s.uiEditConfig)
	a.POST("/streams/:id/configs/:cid", s.uiUpdateConfig)
	a.GET("/streams/:id/configs/:cid/delete", s.uiDeleteConfigConfirm)
	a.POST("/streams/:id/configs/:cid/delete", s.uiDeleteConfig)

	a.GET("/tasks", s.uiTasks)
	a.GET("/tasks/table", s.uiTasksTable)
	a.GET("/tasks/:id", s.uiTask)
	a.POST("/tasks/:id/restart", s.uiRestartTask)

	a.GET("/cluster", s.uiCluster)

	a.GET("/tokens", s.uiTokens)
	a.POST("/tokens", s.uiCreateToken)
	a.POST("/tokens/:id/revoke", s.uiRevokeToken)

	ad := a.Group("/admin", s.uiRequireAdmin)
	ad.GET("/users", s.uiUsers)
	ad.POST("/users", s.uiCreateUser)
	ad.POST("/users/:id/role", s.uiSetRole)
	ad.POST("/users/:id/disabled", s.uiSetDisabled)
	ad.POST("/users/:id/password", s.uiResetPassword)
	ad.POST("/users/:id/delete", s.uiDeleteUser)
	ad.GET("/audit", s.uiAudit)
	ad.GET("/audit.csv", s.uiAuditCSV)
	ad.GET("/webhooks", s.uiWebhooks)
	ad.POST("/webhooks", s.uiCreateWebhook)
	ad.POST("/webhooks/:id/test", s.uiTestWebhook)
	ad.POST("/webhooks/:id/enabled", s.uiWebhookEnabled)
	ad.POST("/webhooks/:id/delete", s.uiDeleteWebhook)
	ad.POST("/nodes/:name/:action", s.uiNodeAction)

	r.NoRoute(s.uiSecurityHeaders, s.uiSession, s.uiNotFound)
}

// uiNotFound answers unknown paths: JSON (the API's error shape) under the
// machine prefixes, the HTML error page elsewhere.
func (s *Server) uiNotFound(c *gin.Context) {
	p := c.Request.URL.Path
	for _, prefix := range []string{"/api/", "/internal/", "/hooks/"} {
		if strings.HasPrefix(p, prefix) {
			s.fail(c, httperr.New(http.StatusNotFound, httperr.CodeNotFound, "", "no such endpoint: "+c.Request.Method+" "+p))
			return
		}
	}
	s.uiError(c, http.StatusNotFound, errors.New("this page does not exist"))
}

// contentSecurityPolicy allows only this origin's scripts, styles and
// images; media from blob: (MSE players); fetches to this origin and, when
// HTTP-FLV or HLS is served elsewhere, those origins; no framing, no plugins.
func (s *Server) contentSecurityPolicy() string {
	connect := "'self'"
	for _, base := range []string{s.p.PlayHTTPBase, s.p.HLSOriginURL} {
		if u, err := url.Parse(base); err == nil && u.Scheme != "" && u.Host != "" {
			connect += " " + u.Scheme + "://" + u.Host
		}
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"media-src 'self' blob:; worker-src 'self' blob:; connect-src " + connect + "; font-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
}

func (s *Server) uiSecurityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.contentSecurityPolicy())
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	c.Next()
}

// uiStatic serves the embedded assets (no directory listings).
func (s *Server) uiStatic(c *gin.Context) {
	name := strings.TrimPrefix(path.Clean(c.Param("path")), "/")
	st, err := fs.Stat(web.Static(), name)
	if err != nil || st.IsDir() {
		c.String(http.StatusNotFound, "not found")
		return
	}
	if strings.HasPrefix(name, "vendor/") {
		c.Header("Cache-Control", "public, max-age=86400")
	} else {
		c.Header("Cache-Control", "no-cache")
	}
	http.ServeFileFS(c.Writer, c.Request, web.Static(), name)
}

func (s *Server) uiRequireUser(c *gin.Context) {
	if auth.PrincipalOf(c) != nil {
		c.Next()
		return
	}
	if c.GetHeader("HX-Request") == "true" {
		c.Header("HX-Redirect", "/login")
		c.AbortWithStatus(http.StatusUnauthorized)
		return
	}
	next := c.Request.URL.RequestURI()
	c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
	c.Abort()
}

func (s *Server) uiRequireAdmin(c *gin.Context) {
	if !auth.PrincipalOf(c).IsAdmin() {
		s.uiError(c, http.StatusForbidden, errors.New("this page is for administrators"))
		c.Abort()
		return
	}
	c.Next()
}

// lang picks the request's language: the account setting, else the browser's.
func (s *Server) lang(c *gin.Context) i18n.Lang {
	acct := ""
	if p := auth.PrincipalOf(c); p != nil {
		acct = p.User.Language
	}
	return i18n.Negotiate(acct, c.GetHeader("Accept-Language"))
}

// page builds the common part of a page's view model.
func (s *Server) page(c *gin.Context, title, nav string) views.Page {
	l := s.lang(c)
	p := views.Page{Title: l.T(title), Lang: l, Nav: nav}
	if pr := auth.PrincipalOf(c); pr != nil {
		p.User = &views.UserBadge{Username: pr.User.Username, Role: pr.User.Role, IsAdmin: pr.IsAdmin(), CanWrite: pr.CanWrite()}
	}
	if se := auth.CurrentSession(c); se != nil {
		p.CSRF = se.CSRFToken
	}
	if msg, ok := flashes[c.Query("done")]; ok {
		p.Flash = l.T(msg)
	}
	return p
}

// flashes are the one-line confirmations a redirect after a change shows
// (?done=code), so no message text travels in URLs.
var flashes = map[string]string{
	"stream-created":    "The stream was created.",
	"stream-updated":    "The stream was updated.",
	"stream-deleted":    "The stream was deleted.",
	"key-rotated":       "The key was rotated. The old key no longer works: update your encoder.",
	"publisher-kicked":  "The publisher is being disconnected. Its encoder may reconnect: the key still works.",
	"config-saved":      "The task config was saved.",
	"config-deleted":    "The task config was deleted.",
	"task-restarted":    "The task will restart.",
	"password-changed":  "Your password was changed. Other sessions were signed out.",
	"language-saved":    "The language was saved.",
	"user-created":      "The user was created.",
	"user-updated":      "The user was updated.",
	"token-revoked":     "The token was revoked.",
	"password-reset":    "The password was set. The user's sessions were signed out.",
	"user-deleted":      "The user was deleted.",
	"recording-deleted": "The recording was deleted.",
	"node-drained":      "The concierge drains: its tasks move to other concierges.",
	"node-resumed":      "The concierge takes tasks again.",
	"node-removed":      "The node was removed.",
	"webhook-tested":    "A test event was sent: its delivery is in the log.",
	"webhook-updated":   "The webhook was updated.",
	"webhook-deleted":   "The webhook was deleted.",
}

// render writes a templ component as an HTML response. Pages carry keys and
// tokens: never cache them.
func (s *Server) render(c *gin.Context, status int, comp templ.Component) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	if err := comp.Render(c.Request.Context(), c.Writer); err != nil {
		s.log.Error("ui: render", "path", c.Request.URL.Path, "err", err)
	}
}

// uiError renders the error page for err with status (0: derived from err).
// Unexpected errors show only an id that the log line also has.
func (s *Server) uiError(c *gin.Context, status int, err error) {
	l := s.lang(c)
	e := views.ErrorPage{Status: status, Message: err.Error()}
	var ae *httperr.APIError
	var se *models.SpecError
	switch {
	case status != 0:
	case errors.As(err, &ae):
		e.Status, e.Message = ae.Status, ae.Message
	case errors.As(err, &se):
		e.Status = http.StatusBadRequest
	case errors.Is(err, models.ErrNotFound):
		e.Status = http.StatusNotFound
	case errors.Is(err, models.ErrConflict), errors.Is(err, models.ErrInUse):
		e.Status = http.StatusConflict
	default:
		e.Status = http.StatusInternalServerError
	}
	switch e.Status {
	case http.StatusForbidden:
		e.Heading = l.T("Not allowed")
	case http.StatusNotFound:
		e.Heading = l.T("Not found")
	case http.StatusBadRequest:
		e.Heading = l.T("Bad request")
	case http.StatusConflict:
		e.Heading = l.T("Conflict")
	default:
		e.Heading = l.T("Something went wrong")
	}
	if e.Status >= 500 {
		e.ID = httperr.NewID()
		e.Message = l.T("The server could not complete the request. The server log has details under this error id.")
		s.log.Error("ui error", "id", e.ID, "status", e.Status, "method", c.Request.Method, "path", c.FullPath(), "err", err)
	} else {
		e.Message = l.T(e.Message)
	}
	p := s.page(c, e.Heading, "")
	s.render(c, e.Status, views.ErrorView(p, e))
}

// redirect answers a successful form post (303: the browser GETs the target).
func redirect(c *gin.Context, target string) {
	c.Redirect(http.StatusSeeOther, target)
}

// rctx is the request's context for store calls. Never pass the
// *gin.Context itself as a context.Context to the database: gin recycles it
// after the handler returns while the driver's cancellation watcher may
// still read it (the race detector reports exactly that).
func rctx(c *gin.Context) context.Context { return c.Request.Context() }

// uiFieldErrors puts the field errors of a write (core.FieldErrors) next
// to their form fields and reports whether there were any. A broken rule
// (models.NameRule) is said in the form's words, translated.
func (s *Server) uiFieldErrors(c *gin.Context, into views.FieldErrors, err error) bool {
	fes := core.FieldErrors(err)
	for _, se := range fes {
		into[se.Field] = s.uiFieldMessage(c, se)
	}
	return len(fes) > 0
}

// uiFieldMessage is a field error in the form's words.
func (s *Server) uiFieldMessage(c *gin.Context, se *models.SpecError) string {
	if se.Rule != "" {
		l := s.lang(c)
		return l.T("Use %s.", l.T(se.Rule))
	}
	return s.lang(c).Reason(se.Message)
}
