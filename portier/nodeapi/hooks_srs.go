package nodeapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/live"
)

// srsHook is the JSON body SRS's http_hooks POST for every action (fields
// from SRS 3 to 6; client_id is a number before SRS 4, a string after).
type srsHook struct {
	Action    string          `json:"action"`
	ServerID  string          `json:"server_id"`
	ClientID  json.RawMessage `json:"client_id"`
	IP        string          `json:"ip"`
	Vhost     string          `json:"vhost"`
	App       string          `json:"app"`
	TcURL     string          `json:"tcUrl"`
	Stream    string          `json:"stream"`
	Param     string          `json:"param"`
	StreamURL string          `json:"stream_url"`
	StreamID  string          `json:"stream_id"`
}

// srsReply answers SRS: allow is HTTP 200 with {"code":0}; anything else
// (a non-zero code, and a non-200 status) makes SRS reject the client.
func srsReply(c *gin.Context, status int, msg string) {
	code := 0
	if status != http.StatusOK {
		code = status
	}
	c.JSON(status, gin.H{"code": code, "msg": msg})
}

// hookSRS serves SRS http_hooks (on_connect, on_close, on_publish,
// on_unpublish, on_play, on_stop, on_dvr, on_hls). Publishes and plays are
// decided by authorizePublish / authorizePlay; on_unpublish ends the live
// state; the other actions are acknowledged. SRS cannot rename a stream, so
// a publish with the key as the stream name is allowed and SRS keeps the
// key as its stream name (on_unpublish with that name still finds it).
func (s *Server) hookSRS(c *gin.Context) {
	var h srsHook
	if err := json.NewDecoder(c.Request.Body).Decode(&h); err != nil {
		srsReply(c, http.StatusBadRequest, "malformed SRS hook body: "+err.Error())
		return
	}
	node := hookNode(c, live.DialectSRS, h.ServerID)
	req := live.Request{
		Dialect: live.DialectSRS, Node: node, App: h.App, Name: h.Stream,
		Query: srsQuery(h), Addr: h.IP, Protocol: srsProtocol(h.TcURL),
	}
	ctx := c.Request.Context()
	switch h.Action {
	case "on_publish":
		req.Action = "publish"
		d := s.lv.AuthorizePublish(ctx, req)
		if !d.Allow {
			srsReply(c, d.Status, d.Reason)
			return
		}
		srsReply(c, http.StatusOK, "OK")
	case "on_unpublish":
		req.Action = "publish_done"
		if err := s.lv.PublishDone(ctx, req); err != nil {
			s.liveLog.Error("srs on_unpublish", "err", err, "node", node)
			srsReply(c, http.StatusServiceUnavailable, "the control plane cannot write its database; retry")
			return
		}
		srsReply(c, http.StatusOK, "OK")
	case "on_play":
		req.Action = "play"
		d := s.lv.AuthorizePlay(ctx, req)
		if !d.Allow {
			srsReply(c, d.Status, d.Reason)
			return
		}
		srsReply(c, http.StatusOK, "OK")
	case "on_connect", "on_close", "on_stop", "on_dvr", "on_hls":
		// Connections are decided at publish/play; recordings and HLS
		// segments made by SRS are its own business.
		srsReply(c, http.StatusOK, "OK")
	case "":
		srsReply(c, http.StatusBadRequest, "the SRS hook body has no action")
	default:
		srsReply(c, http.StatusBadRequest, "unknown SRS action "+strconvQuote(h.Action))
	}
}

// srsQuery is the client's query: SRS's param ("?key=..."), plus the query
// of tcUrl (clients that put ?key= on the app rather than the stream).
func srsQuery(h srsHook) string {
	q := strings.TrimPrefix(h.Param, "?")
	if u, err := url.Parse(h.TcURL); err == nil && u.RawQuery != "" {
		if q == "" {
			return u.RawQuery
		}
		return q + "&" + u.RawQuery
	}
	return q
}

func srsProtocol(tcURL string) string {
	if i := strings.Index(tcURL, "://"); i > 0 {
		return strings.ToLower(tcURL[:i])
	}
	return "rtmp"
}

// strconvQuote quotes an untrusted string for a message, bounded.
func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b, _ := json.Marshal(s)
	return string(b)
}
