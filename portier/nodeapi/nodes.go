package nodeapi

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
)

// The node API (contract A in the project notes): relays and other nodes
// register and heartbeat, and relays ask before every publish and play.
// Requests are JSON; unknown fields are ignored so nodes of a newer version
// can talk to an older control plane.
func (s *Server) registerNodeAPI(g *gin.RouterGroup) {
	g.Use(s.hookAuth(live.DialectNative, false))
	g.POST("/nodes/register", s.nodeRegister)
	g.POST("/nodes/:name/heartbeat", s.nodeHeartbeat)
	g.POST("/nodes/leave", s.nodeLeave)
	g.GET("/nodes", s.nodeList)
	g.POST("/publish/authorize", s.nodePublishAuthorize)
	g.POST("/publish/done", s.nodePublishDone)
	g.POST("/play/authorize", s.nodePlayAuthorize)
	g.GET("/directory/:app/:name", s.directoryLookup)
	g.POST("/publish/resolve", s.nodePublishResolve)
	s.registerConciergeAPI(g) // concierge endpoints (concierge.go)
}

// bindNodeJSON decodes a node API body, answering 400 itself on failure.
func bindNodeJSON(c *gin.Context, v any) bool {
	if err := json.NewDecoder(c.Request.Body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.JSON(http.StatusRequestEntityTooLarge, hookErrBody("too_large", "the body is larger than 1 MiB", ""))
			return false
		}
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, "malformed JSON body: "+err.Error(), ""))
		return false
	}
	return true
}

// registerReq is a registration (or a leave): nodewire.NodeInfo.
type registerReq nodewire.NodeInfo

func (r *registerReq) validate() (field, msg string) {
	switch {
	case !nodeNameRE.MatchString(r.Name):
		return "name", "a node name is 1-128 of letters, digits and _ . : - starting with a letter or digit"
	case !models.ValidNodeRole(r.Role):
		return "role", "role must be origin, edge, concierge, cdn-edge or hls-origin"
	case r.Capacity < 0 || r.Capacity > 1_000_000:
		return "capacity", "capacity must be between 0 and 1000000"
	case len(r.Labels) > 64:
		return "labels", "at most 64 labels"
	case len(r.Version) > 128:
		return "version", "version is longer than 128 characters"
	case len(r.Host) > 256:
		return "host", "host is longer than 256 characters"
	case len(r.Capabilities) > 32:
		return "capabilities", "at most 32 capabilities"
	}
	for _, c := range r.Capabilities {
		if len(c) == 0 || len(c) > 64 {
			return "capabilities", "a capability is 1-64 characters"
		}
	}
	for f, a := range map[string]string{"rtmp_address": r.RTMPAddress, "http_address": r.HTTPAddress} {
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || len(a) > 256 {
			return f, "an address is host:port, like 127.0.0.1:1935"
		}
	}
	for k, v := range r.Labels {
		if len(k) == 0 || len(k) > 64 || len(v) > 256 {
			return "labels", "label keys are 1-64 characters, values at most 256"
		}
	}
	return "", ""
}

func (s *Server) nodeRegister(c *gin.Context) {
	var r registerReq
	if !bindNodeJSON(c, &r) {
		return
	}
	if field, msg := r.validate(); field != "" {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", msg, field))
		return
	}
	n, err := s.p.Store.ClaimNode(c.Request.Context(), models.Node{
		Name: r.Name, Role: r.Role, RTMPAddress: r.RTMPAddress, HTTPAddress: r.HTTPAddress, Host: r.Host,
		Capacity: r.Capacity, Labels: r.Labels, Version: r.Version, Capabilities: r.Capabilities,
	}, s.lv.Now(), s.lv.AliveSince())
	var taken *models.NameTakenError
	if errors.As(err, &taken) {
		s.nameTaken(c, r, taken)
		return
	}
	if err != nil {
		s.liveLog.Error("register node", "err", err, "node", r.Name)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot write its database; retry", ""))
		return
	}
	s.liveLog.Info("node registered", "node", n.Name, "role", n.Role, "rtmp", n.RTMPAddress, "http", n.HTTPAddress)
	c.JSON(http.StatusOK, nodewire.RegisterReply{
		Name:                n.Name,
		HeartbeatIntervalMS: int(s.lv.Heartbeat().Milliseconds()),
		LeaseMS:             int(nodewire.Lease(s.lv.Heartbeat()).Milliseconds()),
	})
}

// nodeLeave is a clean shutdown: the node (the same identity as its
// registration) is dead at once, so its name is free and its streams are
// cleared at the reaper's next pass instead of after the alive window.
func (s *Server) nodeLeave(c *gin.Context) {
	var r registerReq
	if !bindNodeJSON(c, &r) {
		return
	}
	if !nodeNameRE.MatchString(r.Name) {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", "a node name is 1-128 of letters, digits and _ . : - starting with a letter or digit", "name"))
		return
	}
	ok, err := s.p.Store.ReleaseNode(c.Request.Context(), models.Node{Name: r.Name, Role: r.Role, RTMPAddress: r.RTMPAddress, HTTPAddress: r.HTTPAddress, Host: r.Host})
	if err != nil {
		s.liveLog.Error("node leave", "err", err, "node", r.Name)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot write its database; retry", ""))
		return
	}
	if ok {
		s.liveLog.Info("node left", "node", r.Name, "role", r.Role)
	}
	c.JSON(http.StatusOK, gin.H{"released": ok})
}

// nameTaken answers 409 to a registration under a live node's name, with
// the clash in the message (name, the holder's role and addresses) and in
// "holder", and audits the refusal.
func (s *Server) nameTaken(c *gin.Context, r registerReq, e *models.NameTakenError) {
	h := e.Holder
	s.liveLog.Warn("node registration refused: name taken", "node", r.Name, "role", r.Role, "rtmp", r.RTMPAddress,
		"http", r.HTTPAddress, "host", r.Host, "holder_role", h.Role, "holder_rtmp", h.RTMPAddress, "holder_http", h.HTTPAddress, "holder_host", h.Host)
	s.lv.StoreAudit(c.Request.Context(), &models.AuditEvent{
		Time: s.lv.Now().UTC(), Actor: "node:" + r.Name, Action: "node.register", Object: models.NodeObject(r.Name),
		Result: models.ResultDenied, Reason: e.Error(), Node: r.Name, Addr: c.ClientIP(),
		Details: models.MustJSON(gin.H{"role": r.Role, "rtmp_address": r.RTMPAddress, "http_address": r.HTTPAddress, "host": r.Host,
			"holder": gin.H{"role": h.Role, "rtmp_address": h.RTMPAddress, "http_address": h.HTTPAddress, "host": h.Host}}),
	})
	c.JSON(http.StatusConflict, nodewire.NameTakenReply{
		Error: hookErrBody(nodewire.CodeNameTaken, e.Error(), "name").Error,
		Holder: nodewire.Holder{Name: h.Name, Role: h.Role, RTMPAddress: h.RTMPAddress, HTTPAddress: h.HTTPAddress,
			Host: h.Host, LastHeartbeat: h.LastHeartbeat},
	})
}

type heartbeatReq struct {
	Load nodewire.Load `json:"load"`
	// Host is the node's own figures (version, uptime, CPU, memory); nil
	// from older nodes. Kept with the load for the cluster page.
	Host *nodewire.HostStats `json:"host"`
	// Published is absent for nodes that publish nothing (concierges,
	// CDN edges); [] or null from a relay means it holds no publish.
	// "app/name" strings: the form of older relays.
	Published json.RawMessage `json:"published"`
	// Publishes (newer relays; when present it replaces Published) lists
	// each publish with the stream and publish number that authorised it.
	Publishes json.RawMessage `json:"publishes"`
	// Streams has per-stream statistics (relays; see portier/live/stats.go).
	// Absent or null: the node reports none (older relays, other roles).
	Streams json.RawMessage `json:"streams"`
	// Pulls (origins with nodewire.CapRTSPPull; absent from others) is
	// the state of the RTSP pulls this control plane assigned: its
	// presence asks for the full set in the answer.
	Pulls json.RawMessage `json:"pulls"`
}

func (s *Server) nodeHeartbeat(c *gin.Context) {
	name := c.Param("name")
	var r heartbeatReq
	if !bindNodeJSON(c, &r) {
		return
	}
	published, field, msg := parsePublished(r.Published, r.Publishes)
	if field != "" {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", msg, field))
		return
	}
	reports, field, msg := parseStreamReports(r.Streams)
	if field != "" {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", msg, field))
		return
	}
	pulls, wantsPulls, field, msg := parsePullReports(r.Pulls)
	if field != "" {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", msg, field))
		return
	}
	ctx := c.Request.Context()
	load := models.NodeLoad(r.Load)
	if h := r.Host; h != nil {
		if len(h.Version) > 64 {
			h.Version = h.Version[:64]
		}
		load.Host = h
	}
	err := s.p.Store.NodeHeartbeat(ctx, name, load, s.lv.Now())
	if !errors.Is(err, models.ErrNotFound) && ctx.Err() == nil {
		s.sched.DBResult(err) // the written heartbeats are what the reaper judges by
	}
	if errors.Is(err, models.ErrNotFound) {
		c.JSON(http.StatusNotFound, hookErrBody(nodewire.CodeUnknownNode, "node "+strconvQuote(name)+" is not registered: register again", ""))
		return
	}
	if err != nil {
		s.liveLog.Error("heartbeat", "err", err, "node", name)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot write its database; retry", ""))
		return
	}
	var ends []nodewire.EndOrder
	if len(r.Published) > 0 || len(r.Publishes) > 0 {
		if ends, err = s.lv.Reconcile(ctx, name, published); err != nil {
			s.liveLog.Error("reconcile live state", "err", err, "node", name)
		}
	}
	if reports != nil {
		if err := s.lv.StoreStreamStats(ctx, name, reports); err != nil {
			s.liveLog.Error("store stream statistics", "err", err, "node", name)
		}
	}
	reply := nodewire.HeartbeatReply{HeartbeatIntervalMS: s.lv.Heartbeat().Milliseconds(), End: ends}
	if wantsPulls {
		// On an error the answer leaves Pulls null: the origin keeps
		// what it runs until the next heartbeat.
		if reply.Pulls, err = s.p.Store.OriginPulls(ctx, name, pulls, s.lv.Now()); err != nil {
			s.liveLog.Error("origin pulls", "err", err, "node", name)
		}
	}
	c.JSON(http.StatusOK, reply)
}

// parsePullReports reads an origin's pull reports; wants is false when the
// node sent none (not even an empty list): it does not take pulls.
func parsePullReports(raw json.RawMessage) (out []nodewire.PullReport, wants bool, field, msg string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, "", ""
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, false, "pulls", `pulls must be a list of {"task_id","path","playing","error"}`
	}
	if len(out) > 100_000 {
		return nil, false, "pulls", "at most 100000 pulls"
	}
	return out, true, "", ""
}

// parsePublished reads a heartbeat's publishes: the "publishes" objects of
// newer relays, else the "published" "app/name" strings of older ones.
func parsePublished(published, publishes json.RawMessage) (out []nodewire.PublishedStream, field, msg string) {
	if len(publishes) > 0 && string(publishes) != "null" {
		if err := json.Unmarshal(publishes, &out); err != nil {
			return nil, "publishes", `publishes must be a list of {"path","stream_id","publish_id"}`
		}
		field = "publishes"
	} else if len(published) > 0 && string(published) != "null" {
		var paths []string
		if err := json.Unmarshal(published, &paths); err != nil {
			return nil, "published", `published must be a list of "app/name" strings`
		}
		out = make([]nodewire.PublishedStream, len(paths))
		for i, p := range paths {
			out[i] = nodewire.PublishedStream{Path: p}
		}
		field = "published"
	}
	if len(out) > 100_000 {
		return nil, field, "at most 100000 published streams"
	}
	for _, p := range out {
		if p.StreamID < 0 || p.PublishID < 0 || len(p.Path) > 1024 {
			return nil, field, "a publish has a path of at most 1024 characters and non-negative ids"
		}
	}
	return out, "", ""
}

// nodeAlive reports whether n heartbeat within the alive window and is not draining.
func (s *Server) nodeAlive(n *models.Node) bool {
	return n.LastHeartbeat != nil && !n.Draining && !n.LastHeartbeat.Before(s.lv.AliveSince())
}

func (s *Server) nodeList(c *gin.Context) {
	role := c.Query("role")
	if role != "" && !models.ValidNodeRole(role) {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", "role must be origin, edge, concierge, cdn-edge or hls-origin", "role"))
		return
	}
	nodes, err := s.p.Store.ListNodes(c.Request.Context(), role)
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot read its database; retry", ""))
		return
	}
	out := make([]nodewire.Node, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		out = append(out, nodewire.Node{Name: n.Name, Role: n.Role, RTMPAddress: n.RTMPAddress, HTTPAddress: n.HTTPAddress, Alive: s.nodeAlive(n)})
	}
	c.JSON(http.StatusOK, nodewire.NodeList{Nodes: out})
}

// nodePublishReq is a publish or play authorisation request or a publish
// done (nodewire.PublishRequest, nodewire.PlayRequest, nodewire.PublishDone:
// one decoder for the three).
type nodePublishReq struct {
	nodewire.PublishRequest
	// StreamID and PublishID (publish done from newer relays) identify the
	// publish that ended, as its authorisation answered them.
	StreamID  int64 `json:"stream_id"`
	PublishID int64 `json:"publish_id"`
}

func (r *nodePublishReq) request(c *gin.Context, action string) (live.Request, bool) {
	if !nodeNameRE.MatchString(r.Node) {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", "node must name the asking node (letters, digits, _ . : -)", "node"))
		return live.Request{}, false
	}
	return live.Request{
		Dialect: live.DialectNative, Action: action, Node: r.Node, App: r.App, Name: r.Name,
		Query: strings.TrimPrefix(r.Query, "?"), Addr: r.Addr, Protocol: r.Protocol,
	}, true
}

func (s *Server) nodePublishAuthorize(c *gin.Context) {
	var r nodePublishReq
	if !bindNodeJSON(c, &r) {
		return
	}
	req, ok := r.request(c, "publish")
	if !ok {
		return
	}
	d := s.lv.AuthorizePublish(c.Request.Context(), req)
	if !d.Allow {
		c.JSON(d.Status, nodewire.PublishDecision{Reason: d.Reason, Code: d.Code})
		return
	}
	c.JSON(http.StatusOK, nodewire.PublishDecision{
		Allow: true, App: d.Target.App, Name: d.Target.Name,
		StreamID: d.Target.StreamID, PublishID: d.PublishID, Takeover: d.Takeover,
	})
}

func (s *Server) nodePublishDone(c *gin.Context) {
	var r nodePublishReq
	if !bindNodeJSON(c, &r) {
		return
	}
	req, ok := r.request(c, "publish_done")
	if !ok {
		return
	}
	var err error
	if r.StreamID > 0 && r.PublishID >= 0 {
		err = s.lv.PublishDoneByID(c.Request.Context(), req, r.StreamID, r.PublishID)
	} else {
		err = s.lv.PublishDone(c.Request.Context(), req)
	}
	if err != nil {
		s.liveLog.Error("publish done", "err", err, "node", req.Node)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot write its database; retry", ""))
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true})
}

// nodePublishResolve answers the public name of the stream an edge is
// about to forward a publish of: name itself, or (OBS style) the name of the
// stream whose key name is. Edges hash the public name, so a stream lands on
// the same origin whichever form its encoder uses. POST, so that a key never
// appears in a URL or an access log. 404 for an unknown stream.
func (s *Server) nodePublishResolve(c *gin.Context) {
	var r nodewire.ResolveRequest
	if !bindNodeJSON(c, &r) {
		return
	}
	if err := live.CheckAppName(r.App, r.Name); err != nil {
		c.JSON(http.StatusBadRequest, hookErrBody(live.CodeBadRequest, err.Error(), ""))
		return
	}
	t, _, err := s.lv.FindStream(c.Request.Context(), r.App, r.Name)
	switch {
	case errors.Is(err, models.ErrNotFound):
		c.JSON(http.StatusNotFound, hookErrBody(live.CodeUnknownStream, "unknown stream "+r.App+"/"+live.Redact(r.Name), ""))
	case err != nil:
		s.liveLog.Error("resolve publish name", "err", err)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot read its database; retry", ""))
	default:
		c.JSON(http.StatusOK, nodewire.ResolveReply{App: t.App, Name: t.Name})
	}
}

func (s *Server) nodePlayAuthorize(c *gin.Context) {
	var r nodePublishReq
	if !bindNodeJSON(c, &r) {
		return
	}
	req, ok := r.request(c, "play")
	if !ok {
		return
	}
	d := s.lv.AuthorizePlay(c.Request.Context(), req)
	if !d.Allow {
		c.JSON(d.Status, nodewire.PlayDecision{Reason: d.Reason, Code: d.Code})
		return
	}
	c.JSON(http.StatusOK, nodewire.PlayDecision{Allow: true})
}
