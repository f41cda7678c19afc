package rtsp

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/portier/portier/media/stream"
)

// handler receives gortsplib's callbacks. Each runs on the goroutine of the
// connection or session it concerns.
type handler struct{ s *Server }

var (
	_ gortsplib.ServerHandlerOnConnClose    = (*handler)(nil)
	_ gortsplib.ServerHandlerOnSessionClose = (*handler)(nil)
	_ gortsplib.ServerHandlerOnDescribe     = (*handler)(nil)
	_ gortsplib.ServerHandlerOnAnnounce     = (*handler)(nil)
	_ gortsplib.ServerHandlerOnSetup        = (*handler)(nil)
	_ gortsplib.ServerHandlerOnPlay         = (*handler)(nil)
	_ gortsplib.ServerHandlerOnRecord       = (*handler)(nil)
	_ gortsplib.ServerHandlerOnPacketsLost  = (*handler)(nil)
	_ gortsplib.ServerHandlerOnDecodeError  = (*handler)(nil)
	_ gortsplib.ServerHandlerOnRequest      = (*handler)(nil)
	_ gortsplib.ServerHandlerOnResponse     = (*handler)(nil)
)

// OnRequest hides a GStreamer player's User-Agent from gortsplib on SETUP.
// gortsplib (v4.16.2) sleeps 1 s on every SETUP from a GStreamer user
// agent, a workaround for rtspclientsink, a publisher; GStreamer players
// (rtspsrc) do not need it, and with one SETUP per track their first frame
// came 2 s late. Publishers' SETUPs (mode=record) keep the workaround:
// rtspclientsink is not installed here to show it is no longer needed.
func (h *handler) OnRequest(_ *gortsplib.ServerConn, req *base.Request) {
	if req.Method != base.Setup {
		return
	}
	ua := req.Header["User-Agent"]
	if len(ua) != 1 || !strings.HasPrefix(ua[0], "GStreamer") {
		return
	}
	tr := strings.ToLower(strings.Join(req.Header["Transport"], ","))
	if strings.Contains(tr, "mode=record") || strings.Contains(tr, `mode="record"`) {
		return
	}
	req.Header["User-Agent"] = base.HeaderValue{"player/" + ua[0]}
}

// OnResponse releases the fan-out's SETUP lock taken by holdSetup, now
// that gortsplib has done its part of the SETUP. It runs on the
// connection's goroutine after the session's goroutine has answered.
func (h *handler) OnResponse(conn *gortsplib.ServerConn, _ *base.Response) {
	if cs, _ := conn.UserData().(*connState); cs != nil && cs.setupHeld != nil {
		cs.setupHeld.Unlock()
		cs.setupHeld = nil
	}
}

// holdSetup locks o's SETUP lock until the response to this SETUP
// (OnResponse). gortsplib (v4.16.2) is not safe with two players of one
// stream in SETUP at once: adding a UDP player reads every other player's
// transport and media (ServerStream.readerAdd, under the stream's lock),
// while a player's SETUP writes its own after the handler returns, with no
// lock. Two UDP players from one address at the same moment were a data
// race and could be a fatal concurrent map read and write. The lock covers
// only gortsplib's work after the handler (no authorisation, no I/O).
func (h *handler) holdSetup(conn *gortsplib.ServerConn, o *outStream) {
	o.setupMu.Lock()
	h.connState(conn).setupHeld = &o.setupMu
}

// connState remembers, per connection, the paths a client was allowed to
// play at DESCRIBE (requested path -> path to play), so that its SETUP is
// not authorised twice, and the SETUP lock it holds until gortsplib's
// response. It is written on the goroutine of the connection's session
// while the connection's goroutine waits for it.
type connState struct {
	played    map[string]string
	setupHeld *sync.Mutex
}

func (h *handler) connState(conn *gortsplib.ServerConn) *connState {
	cs, _ := conn.UserData().(*connState)
	if cs == nil {
		cs = &connState{played: map[string]string{}}
		conn.SetUserData(cs)
	}
	return cs
}

const maxPlayedPerConn = 16

// sessionState is a session's role: a publisher or a player of one path.
type sessionState struct {
	ann       *announce // publisher before its first SETUP
	pub       *publishSession
	out       *outStream     // player: the fan-out it was counted in
	path      string         // the hub path published or played
	requested string         // player: the path of its SETUP URLs
	playTimer *time.Timer    // player: closes a session that never sends PLAY
	addr      string         // player: its address
	reports   *playerReports // player: its RTCP receiver reports, from PLAY
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("rtsp connection closed", "addr", ctx.Conn.NetConn().RemoteAddr().String(),
		"bytes_in", ctx.Conn.BytesReceived(), "bytes_out", ctx.Conn.BytesSent(), "reason", ctx.Error)
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	st, _ := ctx.Session.UserData().(*sessionState)
	if st == nil {
		return
	}
	if st.pub != nil {
		st.pub.close(ctx.Error)
	}
	if st.out != nil {
		st.playTimer.Stop()
		h.s.releasePlayer(st.out, ctx.Session)
		h.s.log.Info("rtsp player left", "path", st.path, "bytes_out", ctx.Session.BytesSent(), "reason", ctx.Error)
	}
}

// authorize runs the publish or play callback (allow all when unset) and
// returns the refusal to send, or nil.
func (h *handler) authorize(fn AuthorizeFunc, kind string, app, name, rawQuery, addr string) (AuthResult, *base.Response) {
	if fn == nil {
		return AuthResult{Allow: true}, nil
	}
	ctx, cancel := context.WithTimeout(h.s.ctx, 10*time.Second)
	defer cancel()
	ar, err := fn(ctx, AuthRequest{App: app, Name: name, RawQuery: rawQuery, Addr: addr, Protocol: "rtsp"})
	if err != nil {
		code, reason := authStatus(err)
		// Never log the name: it may be the key.
		h.s.log.Info("rtsp "+kind+" refused", "app", app, "addr", addr, "status", int(code), "err", err)
		return ar, refusal(code, reason)
	}
	if !ar.Allow {
		reason := ar.Reason
		if reason == "" {
			reason = kind + " not allowed"
		}
		h.s.log.Info("rtsp "+kind+" refused", "app", app, "addr", addr, "reason", reason)
		return ar, refusal(base.StatusForbidden, reason)
	}
	return ar, nil
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, out := h.playStream(ctx.Conn, ctx.Path, ctx.Query)
	if out == nil {
		return res, nil, nil
	}
	return res, out.st, nil
}

// playStream authorises a play of path on conn and returns the path's
// fan-out, or the refusal.
func (h *handler) playStream(conn *gortsplib.ServerConn, path, rawQuery string) (*base.Response, *outStream) {
	addr := conn.NetConn().RemoteAddr().String()
	app, name, err := splitPath(path)
	if err != nil {
		return refusal(base.StatusBadRequest, err.Error()), nil
	}
	path = app + "/" + name
	cs := h.connState(conn)
	if resolved, ok := cs.played[path]; ok {
		path = resolved
	} else {
		if len(cs.played) >= maxPlayedPerConn {
			clear(cs.played) // bounded: a client probing many paths is re-authorised
		}
		ar, res := h.authorize(h.s.p.AuthorizePlay, "play", app, name, rawQuery, addr)
		if res != nil {
			return res, nil
		}
		requested := path
		if ar.Name != "" {
			path = app + "/" + ar.Name
		}
		cs.played[requested] = path
	}
	out, err := h.s.playOut(path)
	if err != nil {
		code := base.StatusNotFound
		switch {
		case errors.Is(err, errUnsupported):
			code = base.StatusUnsupportedMediaType
		case errors.Is(err, errServerClosed):
			code = base.StatusServiceUnavailable
		}
		h.s.log.Info("rtsp play failed", "path", path, "addr", addr, "err", err)
		return refusal(code, err.Error()), nil
	}
	return &base.Response{StatusCode: base.StatusOK}, out
}

// announce is an accepted ANNOUNCE waiting for its first SETUP, where the
// publish is authorised: by then gortsplib has accepted the transport (it
// answers 461 to one it does not serve before asking us), so a publish the
// server cannot carry never reaches the control plane and never marks the
// stream live.
type announce struct {
	app, name, query, addr string
	// userAgent is the ANNOUNCE's User-Agent (ffmpeg: "Lavf61.7.100").
	userAgent string
	tracks    []Track
}

func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	addr := ctx.Conn.NetConn().RemoteAddr().String()
	app, name, err := splitPath(ctx.Path)
	if err != nil {
		return refusal(base.StatusBadRequest, err.Error()), nil
	}
	tracks, err := checkPublishMedias(ctx.Description)
	if err != nil {
		// Checked before authorising: a refused codec must not mark
		// the stream live on the control plane.
		h.s.log.Info("rtsp publish refused: unsupported media", "app", app, "addr", addr, "err", err)
		return refusal(base.StatusUnsupportedMediaType, err.Error()), nil
	}
	ctx.Session.SetUserData(&sessionState{ann: &announce{app: app, name: name, query: ctx.Query, addr: addr,
		userAgent: headerValue(ctx.Request.Header, "User-Agent"), tracks: tracks}})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// startPublish authorises the announced publish and attaches it to the
// hub; it returns the refusal to send (and, for a 401 challenge,
// liberrors.ErrServerAuth, which makes gortsplib add WWW-Authenticate), or
// nil.
//
// The stream key may come as ?key=, as the name, or as the password of
// Basic credentials (user: the stream name; encoders with only user and
// password fields). A refused publish that gave none of the first and no
// credentials is challenged (401) so that such an encoder retries with
// them. Only Basic is offered: Digest would need the key here, and the
// control plane does not hand keys out; Basic exposes the key no more than
// ?key= in the URL does.
func (h *handler) startPublish(ss *gortsplib.ServerSession, st *sessionState, req *base.Request) (*base.Response, error) {
	a := st.ann
	app, name, addr := a.app, a.name, a.addr
	query := a.query
	_, pass, hasCreds := basicCredentials(req)
	if hasCreds && pass != "" && !hasKey(query) {
		if query != "" {
			query += "&"
		}
		query += "key=" + url.QueryEscape(pass)
	}
	ar, res := h.authorize(h.s.p.Authorize, "publish", app, name, query, addr)
	if res != nil {
		if !hasCreds && !hasKey(query) && (res.StatusCode == base.StatusUnauthorized || res.StatusCode == base.StatusForbidden) {
			return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
		}
		return res, nil
	}
	if ar.Name != "" {
		name = ar.Name
	}
	path := app + "/" + name
	pub, err := h.s.p.Hub.Publish(path, stream.PublisherInfo{RemoteAddr: addr, Protocol: "rtsp", Takeover: ar.Takeover, Tag: ar.Tag,
		Encoder: firstNonEmpty(a.userAgent, headerValue(req.Header, "User-Agent"))})
	if err != nil {
		h.s.log.Info("rtsp publish refused by the hub", "path", path, "addr", addr, "err", err)
		if errors.Is(err, stream.ErrAlreadyPublishing) {
			return refusal(base.StatusForbidden, "stream is already being published"), nil
		}
		h.s.publishDone(app, name, ar.Tag)
		if errors.Is(err, stream.ErrBadPath) {
			return refusal(base.StatusBadRequest, "bad stream path"), nil
		}
		return refusal(base.StatusServiceUnavailable, "server shutting down"), nil
	}
	ps, err := h.s.newPublishSession(ss, pub, app, name, ar.Tag, addr, a.tracks)
	if err != nil {
		pub.Close()
		h.s.publishDone(app, name, ar.Tag)
		h.s.log.Info("rtsp publish refused: bad codec parameters", "path", path, "addr", addr, "err", err)
		return refusal(base.StatusUnsupportedMediaType, err.Error()), nil
	}
	st.pub, st.path, st.ann = ps, path, nil
	h.s.log.Info("rtsp publish started", "path", path, "addr", addr, "tracks", len(a.tracks))
	return nil, nil
}

// basicCredentials returns the user and password of a request's Basic
// Authorization header.
func basicCredentials(req *base.Request) (user, pass string, ok bool) {
	var ah headers.Authorization
	if req == nil || ah.Unmarshal(req.Header["Authorization"]) != nil || ah.Method != headers.AuthMethodBasic {
		return "", "", false
	}
	return ah.BasicUser, ah.BasicPass, true
}

func hasKey(rawQuery string) bool {
	q, err := url.ParseQuery(rawQuery)
	return err == nil && q.Get("key") != ""
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		st, _ := ctx.Session.UserData().(*sessionState)
		if st == nil || (st.pub == nil && st.ann == nil) {
			return refusal(base.StatusBadRequest, "SETUP without an accepted ANNOUNCE"), nil, nil
		}
		if st.pub == nil {
			if res, err := h.startPublish(ctx.Session, st, ctx.Request); res != nil {
				return res, nil, err
			}
		}
		st.pub.noteSetup(ctx)
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	st, _ := ctx.Session.UserData().(*sessionState)
	if st != nil && st.out != nil {
		// Further tracks of a session already counted as a player.
		if st.requested != strings.Trim(ctx.Path, "/") {
			return refusal(base.StatusBadRequest, "one session plays one path"), nil, nil
		}
		h.holdSetup(ctx.Conn, st.out)
		return &base.Response{StatusCode: base.StatusOK}, st.out.st, nil
	}
	res, out := h.playStream(ctx.Conn, ctx.Path, ctx.Query)
	if out == nil {
		return res, nil, nil
	}
	if !h.s.acquirePlayer(out, ctx.Session) {
		return refusal(base.StatusNotFound, "stream ended"), nil, nil
	}
	// gortsplib sets no read deadline before PLAY: a client that sets up
	// and idles would hold the fan-out (and its hub reader) open.
	ss := ctx.Session
	timer := time.AfterFunc(h.s.p.ReadTimeout, func() {
		h.s.log.Info("rtsp player dropped: no PLAY after SETUP", "path", out.path, "after", h.s.p.ReadTimeout)
		ss.Close()
	})
	ss.SetUserData(&sessionState{out: out, path: out.path, requested: strings.Trim(ctx.Path, "/"), playTimer: timer,
		addr: ctx.Conn.NetConn().RemoteAddr().String()})
	h.holdSetup(ctx.Conn, out)
	return res, out.st, nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if st, _ := ctx.Session.UserData().(*sessionState); st != nil && st.out != nil {
		st.playTimer.Stop()
		st.reports = watchReports(ctx.Session) // before markPlaying publishes st to PlayerStats
		h.s.markPlaying(st.out, ctx.Session)
	}
	h.s.log.Info("rtsp player joined", "path", ctx.Path, "addr", ctx.Conn.NetConn().RemoteAddr().String(),
		"transport", transportName(ctx.Session.SetuppedTransport()))
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	st, _ := ctx.Session.UserData().(*sessionState)
	if st == nil || st.pub == nil {
		return refusal(base.StatusBadRequest, "RECORD without an accepted ANNOUNCE"), nil
	}
	if err := st.pub.record(); err != nil {
		return refusal(base.StatusInternalServerError, err.Error()), nil
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *handler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	if st, _ := ctx.Session.UserData().(*sessionState); st != nil && st.pub != nil {
		st.pub.lostReported.Add(ctx.Lost)
	}
}

func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	if st, _ := ctx.Session.UserData().(*sessionState); st != nil && st.pub != nil {
		st.pub.decodeError(ctx.Error)
	}
}

func transportName(t *gortsplib.Transport) string {
	if t == nil {
		return ""
	}
	switch *t {
	case gortsplib.TransportUDP:
		return "udp"
	case gortsplib.TransportUDPMulticast:
		return "udp-multicast"
	case gortsplib.TransportTCP:
		return "tcp"
	}
	return t.String()
}

// headerValue is the first value of an RTSP header ("" when absent).
func headerValue(h base.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
