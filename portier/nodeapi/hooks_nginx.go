package nodeapi

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/live"
)

// nginxFields are the fields nginx-rtmp's notify module sends itself; every
// other field is one of the client's query arguments, appended by nginx.
var nginxFields = map[string]bool{
	"call": true, "app": true, "name": true, "addr": true, "clientid": true, "flashver": true,
	"swfurl": true, "tcurl": true, "pageurl": true, "type": true, "time": true, "timestamp": true,
	"bytes_in": true, "bytes_out": true, "path": true, "recorder": true, "epoch": true,
}

// hookNginx serves nginx-rtmp's on_connect, on_play, on_publish, on_done,
// on_play_done, on_publish_done, on_record_done and on_update notifications
// (form-encoded POST, or GET with notify_method get). A 2xx allows, a 4xx
// refuses; when the client used its key as the stream name, the answer is
// 302 with Location set to the bare public name, which nginx-rtmp adopts as
// the stream's name (an rtmp:// Location would make it push elsewhere).
func (s *Server) hookNginx(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		c.String(http.StatusBadRequest, "malformed nginx-rtmp notification: %v", err)
		return
	}
	form := c.Request.PostForm
	if c.Request.Method == http.MethodGet {
		form = c.Request.URL.Query()
	}
	args := url.Values{}
	for k, v := range form {
		if nginxFields[k] || (c.Request.Method == http.MethodGet && (k == "token" || k == "node")) {
			continue
		}
		args[k] = v
	}
	req := live.Request{
		Dialect: live.DialectNginx, Node: hookNode(c, live.DialectNginx, ""),
		App: form.Get("app"), Name: form.Get("name"), Query: args.Encode(),
		Addr: form.Get("addr"), Protocol: "rtmp",
	}
	ctx := c.Request.Context()
	switch call := form.Get("call"); call {
	case "publish":
		req.Action = "publish"
		d := s.lv.AuthorizePublish(ctx, req)
		switch {
		case !d.Allow:
			c.String(d.Status, "%s", d.Reason)
		case d.Renamed:
			c.Header("Location", d.Target.Name)
			c.Status(http.StatusFound)
		default:
			c.String(http.StatusOK, "OK")
		}
	case "play":
		req.Action = "play"
		d := s.lv.AuthorizePlay(ctx, req)
		if !d.Allow {
			c.String(d.Status, "%s", d.Reason)
			return
		}
		c.String(http.StatusOK, "OK")
	case "publish_done":
		req.Action = "publish_done"
		if err := s.lv.PublishDone(ctx, req); err != nil {
			s.liveLog.Error("nginx-rtmp publish_done", "err", err, "node", req.Node)
			c.String(http.StatusServiceUnavailable, "the control plane cannot write its database; retry")
			return
		}
		c.String(http.StatusOK, "OK")
	case "update":
		// Sent every notify_update_timeout for each session. A publish it
		// confirms stays live under OriginTTL; a disabled stream, or a
		// publish whose key was rotated since, is refused, which makes
		// nginx-rtmp drop the session.
		d := s.lv.ConfirmPublish(ctx, req, false)
		if !d.Allow && (d.Code == live.CodeDisabled || d.Code == live.CodeWrongKey) {
			c.String(d.Status, "%s", d.Reason)
			return
		}
		c.String(http.StatusOK, "OK")
	case "connect", "done", "play_done", "record_done":
		c.String(http.StatusOK, "OK")
	case "":
		c.String(http.StatusBadRequest, "the nginx-rtmp notification has no call field")
	default:
		c.String(http.StatusBadRequest, "unknown nginx-rtmp call %s", strconvQuote(call))
	}
}
