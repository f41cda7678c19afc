// Package live keeps the control plane's live state: which streams are
// published on which origins (publish and play decisions for every hook
// dialect, heartbeat reconciliation, the reaper of dead nodes), and the
// tasks that follow it (compiled when a stream goes live, stopped when it
// goes offline, recompiled when its config or tracks change). It asks the
// scheduler (portier/sched) for placement through the Scheduler interface.
package live

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

// Dialects of publish authorisation.
const (
	DialectNative   = "native"
	DialectSRS      = "srs"
	DialectNginx    = "nginx-rtmp"
	DialectMediaMTX = "mediamtx"
)

// Reply codes of a decision (also the "code" of error bodies).
const (
	CodeBadRequest    = "bad_request"
	CodeUnknownStream = "unknown_stream"
	CodeMissingKey    = "missing_key"
	CodeWrongKey      = "wrong_key"
	CodeDisabled      = "disabled"
	CodeUnavailable   = "unavailable"
)

// Scheduler is what live state asks of the scheduler (portier/sched).
type Scheduler interface {
	// Kick asks for a placement round and wakes the concierges' long polls.
	Kick()
	// KickPlacement asks for a placement round without waking anyone.
	KickPlacement()
	// DeathsHeldOff reports whether this replica must not declare nodes
	// dead now: its database failed (or it started) less than an alive
	// window ago, so stale heartbeats prove nothing (sched.DeathGate).
	DeathsHeldOff() bool
}

// Params configures live state.
type Params struct {
	Store *models.Store
	// Sched places the tasks live state creates or stops.
	Sched Scheduler
	// Heartbeat is what nodes are told to heartbeat at (default
	// nodewire.DefaultHeartbeat). A node that misses
	// nodewire.AliveHeartbeats intervals is dead: the streams it held are
	// cleared.
	Heartbeat time.Duration
	// Compile is the environment task descriptions are resolved against.
	// An empty RelayRTMPURL defaults to rtmp://127.0.0.1:1935; without an
	// InternalSig, one is made from ClusterToken.
	Compile      compile.Env
	ClusterToken string
	// OriginTTL is how long the origin of a hook-only node (by dialect)
	// lives without a confirmation; the reaper expires older ones.
	OriginTTL map[string]time.Duration
	// Now is the clock (tests inject one); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Webhooks takes the events outgoing webhooks deliver (stream.live,
	// stream.offline, publish.refused, node.lost); nil: none.
	Webhooks Emitter
}

// State holds what the live-state machinery keeps in memory. Its one
// mutex guards tomb and tracks only and is never held across I/O.
type State struct {
	st        *models.Store
	sched     Scheduler
	hb        time.Duration
	clock     func() time.Time
	env       compile.Env
	originTTL map[string]time.Duration
	metrics   *liveMetrics
	log       *slog.Logger
	hooks     Emitter
	refused   refusals // publish.refused rate limit (webhooks.go)

	mu sync.Mutex
	// tomb remembers recent publish-done events per node and stream, so a
	// heartbeat snapshot taken before the done cannot bring the stream back.
	tomb map[string]time.Time
	// tracks is each live stream's tracks as last reported (followTracks).
	tracks map[int64]compile.Tracks
}

// New builds live state and installs its task compiler in the store
// (models.Store.SetLiveCompiler).
func New(p Params) *State {
	if p.Heartbeat <= 0 {
		p.Heartbeat = nodewire.DefaultHeartbeat
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Compile.RelayRTMPURL == "" {
		p.Compile.RelayRTMPURL = "rtmp://127.0.0.1:1935"
	}
	if p.Compile.InternalSig == nil && p.ClusterToken != "" {
		tok := p.ClusterToken
		p.Compile.InternalSig = func(path, typ string) string { return nodewire.InternalPlaySig(tok, path, typ) }
	}
	l := &State{
		st: p.Store, sched: p.Sched, hb: p.Heartbeat, clock: p.Now, env: p.Compile, originTTL: p.OriginTTL,
		metrics: newLiveMetrics(), log: p.Logger, hooks: p.Webhooks,
		tomb: map[string]time.Time{}, tracks: map[int64]compile.Tracks{},
	}
	p.Store.SetLiveCompiler(l.compileOnLive)
	return l
}

// Now is live state's clock.
func (l *State) Now() time.Time { return l.clock() }

// Heartbeat is the interval nodes are told to heartbeat at.
func (l *State) Heartbeat() time.Duration { return l.hb }

// Request is one publish, play or done event, whatever dialect it came in.
type Request struct {
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

// Decision is the answer of AuthorizePublish / AuthorizePlay.
type Decision struct {
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

// Deny is a refusal with an HTTP status, a code and a reason.
func Deny(status int, code, reason string) Decision {
	return Decision{Status: status, Code: code, Reason: reason}
}

// pathRE bounds what an app or stream name from a media server may look
// like before it reaches the database: printable, no separators.
var pathRE = regexp.MustCompile(`^[A-Za-z0-9_.~=+:@-]{1,512}$`)

// CheckAppName checks an app and stream name from a media server or relay
// against pathRE before it reaches the database.
func CheckAppName(app, name string) error {
	if !pathRE.MatchString(app) {
		return fmt.Errorf("invalid app %q: use letters, digits and _ . - (at most 512)", Redact(app))
	}
	if !pathRE.MatchString(name) {
		return fmt.Errorf("invalid stream name %q: use letters, digits and _ . - (at most 512)", Redact(name))
	}
	return nil
}

// Redact shortens a name that may be a (wrong or old) key so it never
// reaches logs or audit events whole.
func Redact(s string) string {
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

// FindStream finds app/name, or (OBS style) the stream of app whose key is
// name. renamed reports the second case.
func (l *State) FindStream(ctx context.Context, app, name string) (t *models.PublishTarget, renamed bool, err error) {
	st := l.st
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

// AuthorizePublish is the one publish decision behind every dialect: it
// finds the stream by app and name or by key, denies unknown, disabled and
// wrong-key publishes with a reason, records an audit event for every
// Decision, and on success marks the stream live on req.Node (idempotent).
func (l *State) AuthorizePublish(ctx context.Context, req Request) (d Decision) {
	start := l.clock()
	defer func() {
		l.metrics.observe(req.Dialect, "publish", d, time.Since(start))
		l.emitRefused(ctx, req, d)
	}()
	if err := CheckAppName(req.App, req.Name); err != nil {
		d = Deny(http.StatusBadRequest, CodeBadRequest, err.Error())
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	key := keyFromQuery(req.Query)
	if key == "" {
		key = req.Key
	}
	t, renamed, err := l.FindStream(ctx, req.App, req.Name)
	switch {
	case errors.Is(err, models.ErrNotFound):
		d = Deny(http.StatusNotFound, CodeUnknownStream, "unknown stream "+req.App+"/"+Redact(req.Name))
	case err != nil:
		l.log.Error("publish lookup failed", "err", err, "dialect", req.Dialect, "node", req.Node)
		d = Deny(http.StatusServiceUnavailable, CodeUnavailable, "the control plane cannot read its database; retry")
	case !renamed && key == "":
		d = Deny(http.StatusForbidden, CodeMissingKey, "no key: publish to NAME?key=KEY or use the key as the stream name")
	case !renamed && !keysEqual(key, t.PublishKey):
		d = Deny(http.StatusForbidden, CodeWrongKey, "wrong key")
	case !t.Enabled:
		d = Deny(http.StatusForbidden, CodeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
	default:
		d = Decision{Allow: true, Status: http.StatusOK, Target: t, Renamed: renamed, Takeover: t.AllowTakeover}
	}
	if d.Target == nil && t != nil && err == nil {
		d.Target = t
	}
	ev := l.auditEvent("publish.authorize", req, d)
	if !d.Allow {
		l.StoreAudit(ctx, ev)
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
	wentLive, publishID, err := l.st.AddPublish(ctx, models.Publish{StreamID: t.StreamID, Node: req.Node, Now: l.clock(),
		New: true, Key: authKey, RequireEnabled: true, Event: ev})
	var rv *models.RevokedError
	if errors.As(err, &rv) {
		d = Deny(http.StatusForbidden, CodeWrongKey, "wrong key")
		if rv.Reason == models.RevokeDisabled {
			d = Deny(http.StatusForbidden, CodeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
		}
		d.Target = t
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	if errors.Is(err, models.ErrNotFound) {
		d = Deny(http.StatusNotFound, CodeUnknownStream, "unknown stream "+req.App+"/"+Redact(req.Name))
		l.audit(ctx, "publish.authorize", req, d)
		return d
	}
	d.PublishID = publishID
	if err != nil {
		l.log.Error("mark live failed", "err", err, "stream", t.StreamID, "node", req.Node)
		return Deny(http.StatusServiceUnavailable, CodeUnavailable, "the control plane cannot write its database; retry")
	}
	if wentLive {
		l.streamLive()
		l.emitLive(ctx, t, req.Node, req.Addr, publishID)
	}
	return d
}

// AuthorizePlay allows playing existing, enabled streams (streams are public
// to play) and records the decision.
func (l *State) AuthorizePlay(ctx context.Context, req Request) (d Decision) {
	start := l.clock()
	defer func() { l.metrics.observe(req.Dialect, "play", d, time.Since(start)) }()
	if err := CheckAppName(req.App, req.Name); err != nil {
		d = Deny(http.StatusBadRequest, CodeBadRequest, err.Error())
	} else if t, err := l.st.CachedPublishTargetByName(ctx, req.App, req.Name); errors.Is(err, models.ErrNotFound) {
		d = Deny(http.StatusNotFound, CodeUnknownStream, "unknown stream "+req.App+"/"+Redact(req.Name))
	} else if err != nil {
		l.log.Error("play lookup failed", "err", err, "dialect", req.Dialect)
		d = Deny(http.StatusServiceUnavailable, CodeUnavailable, "the control plane cannot read its database; retry")
	} else if !t.Enabled {
		d = Deny(http.StatusForbidden, CodeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
		d.Target = t
	} else {
		d = Decision{Allow: true, Status: http.StatusOK, Target: t}
	}
	l.audit(ctx, "play.authorize", req, d)
	return d
}

// PublishDone removes req.Node from the stream's origin set (idempotent; the
// name may be the public name or, as nginx-rtmp reports after a rename, the
// key the client used). Unknown streams are not an error.
func (l *State) PublishDone(ctx context.Context, req Request) error {
	if CheckAppName(req.App, req.Name) != nil {
		return nil
	}
	t, _, err := l.FindStream(ctx, req.App, req.Name)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	l.tombstone(req.Node, t.App+"/"+t.Name)
	l.tombstone(req.Node, streamTomb(t.StreamID))
	ev := l.auditEvent("publish.done", req, Decision{Allow: true, Target: t})
	wentOffline, err := l.st.RemoveOrigin(ctx, t.StreamID, req.Node, ev)
	if err != nil {
		return err
	}
	if wentOffline {
		l.StreamOffline(ctx, t.StreamID, "publish ended")
	}
	return nil
}

// PublishDoneByID ends the publish publishID of stream streamID on
// req.Node, as relays that know which stream authorised their publish
// report it: never by name, so the end of a publish of a deleted stream
// cannot touch a newer stream that reuses the name, and the late end of an
// older publish never removes a newer one on the same node.
func (l *State) PublishDoneByID(ctx context.Context, req Request, streamID, publishID int64) error {
	l.tombstone(req.Node, streamTomb(streamID))
	ev := l.auditEvent("publish.done", req, Decision{Allow: true, Target: &models.PublishTarget{StreamID: streamID}})
	ev.Details = models.MustJSON(map[string]any{"dialect": req.Dialect, "protocol": req.Protocol, "publish_id": publishID})
	wentOffline, err := l.st.RemovePublishOrigin(ctx, streamID, req.Node, publishID, ev)
	if err != nil {
		return err
	}
	if wentOffline {
		l.StreamOffline(ctx, streamID, "publish ended")
	}
	return nil
}

// streamTomb is the tombstone key of a stream reported by id.
func streamTomb(id int64) string { return fmt.Sprintf("#%d", id) }

// ConfirmPublish refreshes the origin of a publish a hook-only node reports
// as still running (nginx-rtmp's update, MediaMTX's runOnReady); with
// restore it also re-adds an origin that expired or was lost. A disabled
// stream is refused, so the media server drops it.
func (l *State) ConfirmPublish(ctx context.Context, req Request, restore bool) Decision {
	if err := CheckAppName(req.App, req.Name); err != nil {
		return Deny(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	t, renamed, err := l.FindStream(ctx, req.App, req.Name)
	if errors.Is(err, models.ErrNotFound) {
		return Deny(http.StatusNotFound, CodeUnknownStream, "unknown stream "+req.App+"/"+Redact(req.Name))
	}
	if err != nil {
		return Deny(http.StatusServiceUnavailable, CodeUnavailable, "the control plane cannot read its database; retry")
	}
	if !t.Enabled {
		return Deny(http.StatusForbidden, CodeDisabled, "stream "+t.App+"/"+t.Name+" is disabled")
	}
	// A publish that shows the key it was authorised with (nginx-rtmp's
	// update repeats the client's arguments) ends once the key rotated.
	if key := keyFromQuery(req.Query); !renamed && key != "" && !keysEqual(key, t.PublishKey) {
		return Deny(http.StatusForbidden, CodeWrongKey, "the stream's key was rotated")
	}
	ok, err := l.st.RefreshOrigin(ctx, t.StreamID, req.Node, l.clock())
	if err == nil && !ok && restore {
		var wentLive bool
		wentLive, err = l.st.AddOrigin(ctx, t.StreamID, req.Node, l.clock(), false, nil)
		if wentLive {
			l.streamLive()
			l.emitLive(ctx, t, req.Node, req.Addr, 0)
		}
	}
	if err != nil {
		return Deny(http.StatusServiceUnavailable, CodeUnavailable, "the control plane cannot write its database; retry")
	}
	return Decision{Allow: true, Status: http.StatusOK, Target: t}
}

func (l *State) auditEvent(action string, req Request, d Decision) *models.AuditEvent {
	obj := models.PathObject(req.App, Redact(req.Name))
	if d.Target != nil {
		obj = models.StreamObject(d.Target.StreamID)
	}
	res, reason := models.ResultOK, d.Reason
	if !d.Allow {
		res = models.ResultDenied
		if d.Code == CodeUnavailable {
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
		Time: l.clock().UTC(), Actor: "node:" + req.Node, Action: action, Object: obj,
		Result: res, Reason: reason, Node: req.Node, Addr: req.Addr, Details: models.MustJSON(details),
	}
}

func (l *State) audit(ctx context.Context, action string, req Request, d Decision) {
	l.StoreAudit(ctx, l.auditEvent(action, req, d))
}

// StoreAudit records ev; a failure is logged, never returned.
func (l *State) StoreAudit(ctx context.Context, ev *models.AuditEvent) {
	if err := l.st.Audit(ctx, ev); err != nil {
		l.log.Error("audit event lost", "err", err, "action", ev.Action, "object", ev.Object)
	}
}

// AliveWindow is how long after its last heartbeat a node counts as alive
// (nodewire.AliveWindow): the one definition behind name claims, the stream
// directory, the reaper, the node lists and the publish tombstones.
func (l *State) AliveWindow() time.Duration { return nodewire.AliveWindow(l.hb) }

// AliveSince is the oldest last heartbeat of a node alive now.
func (l *State) AliveSince() time.Time { return l.clock().Add(-l.AliveWindow()) }

func (l *State) tombstone(node, path string) {
	l.mu.Lock()
	l.tomb[node+"\x00"+path] = l.clock()
	l.mu.Unlock()
}

func (l *State) untomb(node, path string) {
	l.mu.Lock()
	delete(l.tomb, node+"\x00"+path)
	l.mu.Unlock()
}

// tombstoned reports whether node ended the publish of path within the
// alive window.
func (l *State) tombstoned(node, path string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.tomb[node+"\x00"+path]
	return ok && l.clock().Sub(at) < l.AliveWindow()
}

func (l *State) sweepTombs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, at := range l.tomb {
		if l.clock().Sub(at) >= l.AliveWindow() {
			delete(l.tomb, k)
		}
	}
}

// NodeState is "alive", "draining" or "dead" (no heartbeat within the
// alive window at now).
func (l *State) NodeState(n *models.Node, now time.Time) string {
	if n.LastHeartbeat == nil || now.Sub(*n.LastHeartbeat) > l.AliveWindow() {
		return "dead"
	}
	if n.Draining {
		return "draining"
	}
	return "alive"
}
