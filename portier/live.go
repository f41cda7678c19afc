package portier

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
)

// LiveParams configures live state, the node registry and task compilation.
type LiveParams struct {
	// HeartbeatInterval is what nodes are told to heartbeat at (default 1s).
	// A node that misses 3 intervals is dead: the streams it held are cleared.
	HeartbeatInterval time.Duration
	// Compile is the environment task descriptions are resolved against
	// (relay URL, record directory, HLS origin and its per-task tokens).
	// An empty RelayRTMPURL defaults to rtmp://127.0.0.1:1935.
	Compile compile.Env
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
}

// Dialects of publish authorisation.
const (
	dialectNative   = "native"
	dialectSRS      = "srs"
	dialectNginx    = "nginx-rtmp"
	dialectMediaMTX = "mediamtx"
)

// Reply codes of a decision (also the "code" of error bodies).
const (
	codeBadRequest    = "bad_request"
	codeUnknownStream = "unknown_stream"
	codeMissingKey    = "missing_key"
	codeWrongKey      = "wrong_key"
	codeDisabled      = "disabled"
	codeUnavailable   = "unavailable"
)

// liveState holds what the live-state machinery keeps in memory. Its one
// mutex guards tomb only and is never held across I/O.
type liveState struct {
	s       *Server
	hb      time.Duration
	now     func() time.Time
	env     compile.Env
	metrics *liveMetrics
	log     *slog.Logger

	mu sync.Mutex
	// tomb remembers recent publish-done events per node and stream, so a
	// heartbeat snapshot taken before the done cannot bring the stream back.
	tomb map[string]time.Time
	// tracks is each live stream's tracks as last reported (followTracks).
	tracks map[int64]compile.Tracks
}

func newLiveState(s *Server) *liveState {
	p := s.p.Live
	if p.HeartbeatInterval <= 0 {
		p.HeartbeatInterval = nodewire.DefaultHeartbeat
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Compile.RelayRTMPURL == "" {
		p.Compile.RelayRTMPURL = "rtmp://127.0.0.1:1935"
	}
	if p.Compile.InternalSig == nil && s.p.ClusterToken != "" {
		tok := s.p.ClusterToken
		p.Compile.InternalSig = func(path, typ string) string { return nodewire.InternalPlaySig(tok, path, typ) }
	}
	l := &liveState{
		s: s, hb: p.HeartbeatInterval, now: p.Now, env: p.Compile,
		metrics: newLiveMetrics(), log: s.log.With("part", "live"),
		tomb: map[string]time.Time{}, tracks: map[int64]compile.Tracks{},
	}
	s.p.Store.SetLiveCompiler(l.compileOnLive)
	return l
}

// hookReq is one publish, play or done event, whatever dialect it came in.
type hookReq struct {
	Dialect  string
	Action   string // publish, play, publish_done
	Node     string // the media server that asks
	App      string
	Name     string // the name the client used: the public name or the key
	Query    string // the client's raw query ("key=abc&x=1")
	Key      string // a key given out of band (MediaMTX password or token)
	Addr     string // the client's address
	Protocol string
}

// decision is the answer of authorizePublish / authorizePlay.
type decision struct {
	Allow    bool
	Status   int    // HTTP status the native endpoint answers with
	Code     string // machine-readable reason
	Reason   string // human-readable reason
	Target   *models.PublishTarget
	Renamed  bool // the key was given as the stream name; Target.Name is the public name
	Takeover bool
	// PublishID is the stream's number of an allowed publish: the relay
	// reports it in heartbeats and publish-done, so the control plane
	// attaches the publish only to the stream that authorised it.
	PublishID int64
}

func deny(status int, code, reason string) decision {
	return decision{Status: status, Code: code, Reason: reason}
}

// pathRE bounds what an app or stream name from a media server may look
// like before it reaches the database: printable, no separators.
var pathRE = regexp.MustCompile(`^[A-Za-z0-9_.~=+:@-]{1,512}$`)

func checkAppName(app, name string) error {
	if !pathRE.MatchString(app) {
		return fmt.Errorf("invalid app %q: use letters, digits and _ . - (at most 512)", redact(app))
	}
	if !pathRE.MatchString(name) {
		return fmt.Errorf("invalid stream name %q: use letters, digits and _ . - (at most 512)", redact(name))
	}
	return nil
}

// redact shortens a name that may be a (wrong or old) key so it never
// reaches logs or audit events whole.
func redact(s string) string {
	if len(s) >= 16 {
		return s[:4] + "…"
	}
	return s
}

// keyFromQuery returns the key query argument of a raw query (with or
// without a leading '?'); a malformed query yields no key.
func keyFromQuery(raw string) string {
	// ParseQuery keeps the well-formed pairs of a malformed query.
	v, _ := url.ParseQuery(strings.TrimPrefix(raw, "?"))
	return v.Get("key")
}

func keysEqual(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// findStream finds app/name, or (OBS style) the stream of app whose key is
// name. renamed reports the second case.
func (l *liveState) findStream(ctx context.Context, app, name string) (t *models.PublishTarget, renamed bool, err error) {
	st := l.s.p.Store
	t, err = st.CachedPublishTargetByName(ctx, app, name)
	if err == nil {
		return t, false, nil
	}
	if !errors.Is(err, models.ErrNotFound) {
		return nil, false, err
	}
	t, err = st.CachedPublishTargetByKey(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if t.App != app {
		return nil, false, fmt.Errorf("stream by key in another app: %w", models.ErrNotFound)
	}
	return t, true, nil
}

// authorizePublish is the one publish decision behind every dialect: it
// finds the stream by app and name or by key, denies unknown, disabled and
// wrong-key publishes with a reason, records an audit event for every
// decision, and on success marks the stream live on req.Node (idempotent).
func (l *liveState) authorizePublish(ctx context.Context, req hookReq) (d decision) {
	start := l.now()
	defer func() { l.metrics.observe(req.Dialect, "publish", d, time.Since(start)) }()
	if err := checkAppName(req.App, req.Name); err != nil {
		d = deny(http.StatusBadRequest, codeBadRequest, err.Error())
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	key := keyFromQuery(req.Query)
	if key == "" {
		key = req.Key
	}
	t, renamed, err := l.findStream(ctx, req.App, req.Name)
	switch {
	case errors.Is(err, models.ErrNotFound):
		d = deny(http.StatusNotFound, codeUnknownStream, "unknown stream "+req.App+"/"+redact(req.Name))
	case err != nil:
		l.log.Error("publish lookup failed", "err", err, "dialect", req.Dialect, "node", req.Node)
		d = deny(http.StatusServiceUnavailable, codeUnavailable, "the control plane cannot read its database; retry")
	case !renamed && key == "":
		d = deny(http.StatusForbidden, codeMissingKey, "no key: publish to NAME?key=KEY or use the key as the stream name")
	case !renamed && !keysEqual(key, t.PublishKey):
		d = deny(http.StatusForbidden, codeWrongKey, "wrong key")
	case !t.Enabled:
		d = deny(http.StatusForbidden, codeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
	default:
		d = decision{Allow: true, Status: http.StatusOK, Target: t, Renamed: renamed, Takeover: t.AllowTakeover}
	}
	if d.Target == nil && t != nil && err == nil {
		d.Target = t
	}
	ev := l.auditEvent("publish.authorize", req, d)
	if !d.Allow {
		l.storeAudit(ctx, ev)
		return d
	}
	l.untomb(req.Node, t.App+"/"+t.Name)
	l.untomb(req.Node, streamTomb(t.StreamID))
	authKey := key
	if renamed {
		authKey = req.Name // the key given as the stream name
	}
	// The key and the enabled flag are checked again inside the
	// transaction, under the stream's lock: a rotation or a disable that
	// committed since the lookup above wins.
	wentLive, publishID, err := l.s.p.Store.AddPublish(ctx, models.Publish{StreamID: t.StreamID, Node: req.Node, Now: l.now(),
		New: true, Key: authKey, RequireEnabled: true, Event: ev})
	var rv *models.RevokedError
	if errors.As(err, &rv) {
		d = deny(http.StatusForbidden, codeWrongKey, "wrong key")
		if rv.Reason == models.RevokeDisabled {
			d = deny(http.StatusForbidden, codeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
		}
		d.Target = t
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	if errors.Is(err, models.ErrNotFound) {
		d = deny(http.StatusNotFound, codeUnknownStream, "unknown stream "+req.App+"/"+redact(req.Name))
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	d.PublishID = publishID
	if err != nil {
		l.log.Error("mark live failed", "err", err, "stream", t.StreamID, "node", req.Node)
		return deny(http.StatusServiceUnavailable, codeUnavailable, "the control plane cannot write its database; retry")
	}
	if wentLive {
		l.streamLive()
	}
	return d
}

// authorizePlay allows playing existing, enabled streams (streams are public
// to play) and records the decision.
func (l *liveState) authorizePlay(ctx context.Context, req hookReq) (d decision) {
	start := l.now()
	defer func() { l.metrics.observe(req.Dialect, "play", d, time.Since(start)) }()
	if err := checkAppName(req.App, req.Name); err != nil {
		d = deny(http.StatusBadRequest, codeBadRequest, err.Error())
	} else if t, err := l.s.p.Store.CachedPublishTargetByName(ctx, req.App, req.Name); errors.Is(err, models.ErrNotFound) {
		d = deny(http.StatusNotFound, codeUnknownStream, "unknown stream "+req.App+"/"+redact(req.Name))
	} else if err != nil {
		l.log.Error("play lookup failed", "err", err, "dialect", req.Dialect)
		d = deny(http.StatusServiceUnavailable, codeUnavailable, "the control plane cannot read its database; retry")
	} else if !t.Enabled {
		d = deny(http.StatusForbidden, codeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
		d.Target = t
	} else {
		d = decision{Allow: true, Status: http.StatusOK, Target: t}
	}
	l.audit(ctx, "play.authorize", req, d)
	return d
}

// publishDone removes req.Node from the stream's origin set (idempotent; the
// name may be the public name or, as nginx-rtmp reports after a rename, the
// key the client used). Unknown streams are not an error.
func (l *liveState) publishDone(ctx context.Context, req hookReq) error {
	if checkAppName(req.App, req.Name) != nil {
		return nil
	}
	t, _, err := l.findStream(ctx, req.App, req.Name)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	l.tombstone(req.Node, t.App+"/"+t.Name)
	l.tombstone(req.Node, streamTomb(t.StreamID))
	ev := l.auditEvent("publish.done", req, decision{Allow: true, Target: t})
	wentOffline, err := l.s.p.Store.RemoveOrigin(ctx, t.StreamID, req.Node, ev)
	if err != nil {
		return err
	}
	if wentOffline {
		l.streamOffline(ctx, t.StreamID, "publish ended")
	}
	return nil
}

// publishDoneByID ends the publish publishID of stream streamID on
// req.Node, as relays that know which stream authorised their publish
// report it: never by name, so the end of a publish of a deleted stream
// cannot touch a newer stream that reuses the name, and the late end of an
// older publish never removes a newer one on the same node.
func (l *liveState) publishDoneByID(ctx context.Context, req hookReq, streamID, publishID int64) error {
	l.tombstone(req.Node, streamTomb(streamID))
	ev := l.auditEvent("publish.done", req, decision{Allow: true, Target: &models.PublishTarget{StreamID: streamID}})
	ev.Details = models.MustJSON(map[string]any{"dialect": req.Dialect, "protocol": req.Protocol, "publish_id": publishID})
	wentOffline, err := l.s.p.Store.RemovePublishOrigin(ctx, streamID, req.Node, publishID, ev)
	if err != nil {
		return err
	}
	if wentOffline {
		l.streamOffline(ctx, streamID, "publish ended")
	}
	return nil
}

// streamTomb is the tombstone key of a stream reported by id.
func streamTomb(id int64) string { return fmt.Sprintf("#%d", id) }

// confirmPublish refreshes the origin of a publish a hook-only node reports
// as still running (nginx-rtmp's update, MediaMTX's runOnReady); with
// restore it also re-adds an origin that expired or was lost. A disabled
// stream is refused, so the media server drops it.
func (l *liveState) confirmPublish(ctx context.Context, req hookReq, restore bool) decision {
	if err := checkAppName(req.App, req.Name); err != nil {
		return deny(http.StatusBadRequest, codeBadRequest, err.Error())
	}
	t, renamed, err := l.findStream(ctx, req.App, req.Name)
	if errors.Is(err, models.ErrNotFound) {
		return deny(http.StatusNotFound, codeUnknownStream, "unknown stream "+req.App+"/"+redact(req.Name))
	}
	if err != nil {
		return deny(http.StatusServiceUnavailable, codeUnavailable, "the control plane cannot read its database; retry")
	}
	if !t.Enabled {
		return deny(http.StatusForbidden, codeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
	}
	// A publish that shows the key it was authorised with (nginx-rtmp's
	// update repeats the client's arguments) ends once the key rotated.
	if key := keyFromQuery(req.Query); !renamed && key != "" && !keysEqual(key, t.PublishKey) {
		return deny(http.StatusForbidden, codeWrongKey, "the stream's key was rotated")
	}
	ok, err := l.s.p.Store.RefreshOrigin(ctx, t.StreamID, req.Node, l.now())
	if err == nil && !ok && restore {
		var wentLive bool
		wentLive, err = l.s.p.Store.AddOrigin(ctx, t.StreamID, req.Node, l.now(), false, nil)
		if wentLive {
			l.streamLive()
		}
	}
	if err != nil {
		return deny(http.StatusServiceUnavailable, codeUnavailable, "the control plane cannot write its database; retry")
	}
	return decision{Allow: true, Status: http.StatusOK, Target: t}
}

func (l *liveState) auditEvent(action string, req hookReq, d decision) *models.AuditEvent {
	obj := "stream:" + req.App + "/" + redact(req.Name)
	if d.Target != nil {
		obj = fmt.Sprintf("stream:%d", d.Target.StreamID)
	}
	res, reason := models.ResultOK, d.Reason
	if !d.Allow {
		res = models.ResultDenied
		if d.Code == codeUnavailable {
			res = models.ResultError
		}
	}
	details := map[string]any{"dialect": req.Dialect, "protocol": req.Protocol}
	if d.Renamed {
		details["key_as_name"] = true
	}
	if d.Code != "" {
		details["code"] = d.Code
	}
	return &models.AuditEvent{
		Time: l.now().UTC(), Actor: "node:" + req.Node, Action: action, Object: obj,
		Result: res, Reason: reason, Node: req.Node, Addr: req.Addr, Details: models.MustJSON(details),
	}
}

func (l *liveState) audit(ctx context.Context, action string, req hookReq, d decision) {
	l.storeAudit(ctx, l.auditEvent(action, req, d))
}

func (l *liveState) storeAudit(ctx context.Context, ev *models.AuditEvent) {
	if err := l.s.p.Store.Audit(ctx, ev); err != nil {
		l.log.Error("audit event lost", "err", err, "action", ev.Action, "object", ev.Object)
	}
}

// aliveWindow is how long after its last heartbeat a node counts as alive
// (nodewire.AliveWindow): the one definition behind name claims, the stream
// directory, the reaper, the node lists and the publish tombstones.
func (l *liveState) aliveWindow() time.Duration { return nodewire.AliveWindow(l.hb) }

// aliveSince is the oldest last heartbeat of a node alive now.
func (l *liveState) aliveSince() time.Time { return l.now().Add(-l.aliveWindow()) }

func (l *liveState) tombstone(node, path string) {
	l.mu.Lock()
	l.tomb[node+"\x00"+path] = l.now()
	l.mu.Unlock()
}

func (l *liveState) untomb(node, path string) {
	l.mu.Lock()
	delete(l.tomb, node+"\x00"+path)
	l.mu.Unlock()
}

// tombstoned reports whether node ended the publish of path within the
// alive window.
func (l *liveState) tombstoned(node, path string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.tomb[node+"\x00"+path]
	return ok && l.now().Sub(at) < l.aliveWindow()
}

func (l *liveState) sweepTombs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, at := range l.tomb {
		if l.now().Sub(at) >= l.aliveWindow() {
			delete(l.tomb, k)
		}
	}
}
