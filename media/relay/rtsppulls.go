package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/rtsppull"
)

// RTSPPull is one RTSP source an origin pulls into its hub itself (see
// media/rtsppull): no ffmpeg, one depacketisation, reconnect with backoff.
type RTSPPull struct {
	// Path is the hub path ("app/name") players play: a stream of the
	// control plane.
	Path string `json:"path"`
	// Key is the stream's publish key: each session is authorised by the
	// control plane like an encoder's publish (audited, revocable, live
	// at once). Never logged or shown.
	Key string `json:"key"`
	// URL is rtsp://[user:pass@]host[:port]/path of the source.
	URL string `json:"url"`
	// Transport is "udp", "tcp" or "" (UDP, then TCP).
	Transport string `json:"transport,omitempty"`
}

// pullSet is the relay's RTSP pulls by path: its own (local) and those its
// control plane assigned.
//
// Concurrency rule: cfgMu serialises changes of local and assigned and is
// taken before setMu; setMu serialises changes of the running set
// (applyPulls, start, close) and may be held while pullers stop; mu
// guards the map, started, assigned and tasks and is never held across a
// puller's Start, Close or Status.
type pullSet struct {
	cfgMu    sync.Mutex
	local    []RTSPPull
	assigned []RTSPPull
	tasks    map[string]int64 // assigned path -> the control plane's task
	setMu    sync.Mutex
	mu       sync.Mutex
	byPath   map[string]*pullEntry
	order    []string // paths in configuration order
	started  bool
	closed   bool
}

type pullEntry struct {
	cfg RTSPPull
	pl  *rtsppull.Puller
}

// ErrPullsNotOrigin: only origins pull (a pulled stream is a publish, and
// edges serve what origins hold).
var ErrPullsNotOrigin = errors.New("relay: RTSP pulls are for origins (an edge serves what origins hold): configure them on an origin")

// SetRTSPPulls makes the relay pull exactly pulls (its own configuration:
// --rtsp-pull, PUT /api/v1/rtsp-pulls), besides the pulls its control plane
// assigns (assignPulls), per path: a pull whose configuration is unchanged
// keeps running untouched; a changed one is stopped, then rebuilt (one
// publisher per path: players wait through the hub's publisher grace); a
// removed one stops. Pulls of other paths are never cut. The whole set is
// checked first: on an error nothing changes. Before Start the pulls are
// only recorded; Start starts them. A path of pulls wins over an assigned
// pull of the same path.
func (r *Relay) SetRTSPPulls(pulls []RTSPPull) error {
	ps := &r.pulls
	ps.cfgMu.Lock()
	defer ps.cfgMu.Unlock()
	if err := r.applyPulls(mergePulls(pulls, ps.assigned)); err != nil {
		return err
	}
	ps.local = pulls
	return nil
}

// assignPulls makes the relay pull what its control plane assigned (the
// full set, from a heartbeat answer), besides its own pulls; see
// SetRTSPPulls. An assignment the relay cannot take is logged (the
// control plane sees the pull not playing).
func (r *Relay) assignPulls(orders []nodewire.PullOrder) {
	if r.p.Role != RoleOrigin {
		return
	}
	ps := &r.pulls
	ps.cfgMu.Lock()
	defer ps.cfgMu.Unlock()
	assigned := make([]RTSPPull, 0, len(orders))
	tasks := make(map[string]int64, len(orders))
	for _, o := range orders {
		if _, dup := tasks[o.Path]; dup {
			continue
		}
		tasks[o.Path] = o.TaskID
		assigned = append(assigned, RTSPPull{Path: o.Path, Key: o.Key, URL: o.URL, Transport: o.Transport})
	}
	if slices.Equal(assigned, ps.assigned) {
		return
	}
	if err := r.applyPulls(mergePulls(ps.local, assigned)); err != nil {
		r.log.Error("RTSP pulls assigned by the control plane refused", "err", err, "pulls", len(assigned))
		return
	}
	ps.mu.Lock()
	ps.assigned, ps.tasks = assigned, tasks
	ps.mu.Unlock()
}

// mergePulls is local, then the assigned pulls of other paths.
func mergePulls(local, assigned []RTSPPull) []RTSPPull {
	out := append([]RTSPPull(nil), local...)
	for _, a := range assigned {
		if !slices.ContainsFunc(local, func(l RTSPPull) bool { return l.Path == a.Path }) {
			out = append(out, a)
		}
	}
	return out
}

// pullReports is the state of the assigned pulls for the heartbeat: a
// list (empty, not nil) on origins, which tells the control plane they
// take pulls (nodewire.CapRTSPPull); nil on edges.
func (r *Relay) pullReports() []nodewire.PullReport {
	if r.p.Role != RoleOrigin {
		return nil
	}
	ps := &r.pulls
	ps.mu.Lock()
	out := make([]nodewire.PullReport, 0, len(ps.tasks))
	for path, id := range ps.tasks {
		e := ps.byPath[path]
		if e == nil || !slices.Contains(ps.assigned, e.cfg) {
			continue // a pull of the relay's own configuration holds the path
		}
		out = append(out, nodewire.PullReport{TaskID: id, Path: path})
	}
	entries := make([]*pullEntry, len(out))
	for i, rep := range out {
		entries[i] = ps.byPath[rep.Path]
	}
	ps.mu.Unlock()
	for i, e := range entries {
		st := e.pl.Status() // its own lock: not under ps.mu
		out[i].Playing, out[i].Failures = st.Playing, st.Failures
		if !st.Playing {
			out[i].Error = pullError(st.LastError)
		}
	}
	return out
}

// pullError puts the common cause first in a pull's error, in the words a
// concierge uses for an ffmpeg pull ("source refused connection").
func pullError(e string) string {
	switch {
	case strings.Contains(e, "connection refused"):
		return "source refused connection: " + e
	case strings.Contains(e, "i/o timeout"), strings.Contains(e, "deadline exceeded"):
		return "source timed out: " + e
	}
	return e
}

// applyPulls makes the relay pull exactly pulls (SetRTSPPulls' rules).
// The caller holds cfgMu.
func (r *Relay) applyPulls(pulls []RTSPPull) error {
	if len(pulls) > 0 && r.p.Role != RoleOrigin {
		return ErrPullsNotOrigin
	}
	built := map[string]*pullEntry{}
	order := make([]string, 0, len(pulls))
	for _, sp := range pulls {
		if _, dup := built[sp.Path]; dup {
			return fmt.Errorf("relay: RTSP pull: path %q is pulled twice", sp.Path)
		}
		if sp.Key == "" {
			return fmt.Errorf("relay: RTSP pull %s: the stream's key is required (APP/NAME?key=KEY=rtsp://...): the control plane authorises the publish", sp.Path)
		}
		app, name, _ := strings.Cut(sp.Path, "/")
		pl, err := rtsppull.New(rtsppull.Params{Hub: r.hub, Path: sp.Path, URL: sp.URL, Transport: sp.Transport, Logger: r.p.Logger,
			Authorizer: &pullAuth{r: r, app: app, name: name, key: sp.Key}})
		if err != nil {
			return fmt.Errorf("relay: RTSP pull: %w", err)
		}
		built[sp.Path] = &pullEntry{cfg: sp, pl: pl}
		order = append(order, sp.Path)
	}

	ps := &r.pulls
	ps.setMu.Lock()
	defer ps.setMu.Unlock()
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return errors.New("relay: closed")
	}
	old, started := ps.byPath, ps.started
	next := make(map[string]*pullEntry, len(built))
	var stop []*rtsppull.Puller
	var start []*rtsppull.Puller
	for path, e := range built {
		if o := old[path]; o != nil && o.cfg == e.cfg {
			next[path] = o // unchanged: keep it running (the new one was never started)
			continue
		}
		next[path] = e
		start = append(start, e.pl)
	}
	for path, o := range old {
		if n := next[path]; n != o {
			stop = append(stop, o.pl)
		}
	}
	ps.byPath, ps.order = next, order
	ps.mu.Unlock()

	for _, pl := range stop {
		_ = pl.Close()
	}
	if started {
		for _, pl := range start {
			pl.Start()
		}
	}
	return nil
}

func (r *Relay) startPulls() {
	ps := &r.pulls
	ps.setMu.Lock()
	defer ps.setMu.Unlock()
	ps.mu.Lock()
	ps.started = true
	list := ps.listLocked()
	ps.mu.Unlock()
	for _, e := range list {
		e.pl.Start()
	}
}

func (r *Relay) closePulls() {
	ps := &r.pulls
	ps.setMu.Lock()
	defer ps.setMu.Unlock()
	ps.mu.Lock()
	ps.closed = true
	list := ps.listLocked()
	ps.byPath, ps.order = nil, nil
	ps.mu.Unlock()
	for _, e := range list {
		_ = e.pl.Close()
	}
}

func (ps *pullSet) listLocked() []*pullEntry {
	out := make([]*pullEntry, 0, len(ps.order))
	for _, p := range ps.order {
		out = append(out, ps.byPath[p])
	}
	return out
}

// RTSPPulls is the state of the relay's RTSP pulls in configuration order
// (URLs without credentials, no keys).
func (r *Relay) RTSPPulls() []rtsppull.Status {
	r.pulls.mu.Lock()
	list := r.pulls.listLocked()
	r.pulls.mu.Unlock()
	out := make([]rtsppull.Status, 0, len(list))
	for _, e := range list {
		out = append(out, e.pl.Status())
	}
	return out
}

// pullAuth asks the control plane for each session of one pull, with the
// stream's key, as the RTMP and RTSP servers do for encoders.
type pullAuth struct {
	r              *Relay
	app, name, key string
}

var _ rtsppull.Authorizer = (*pullAuth)(nil)

func (a *pullAuth) AuthorizePull(ctx context.Context, path, source string) (rtsppull.Grant, error) {
	v := a.r.authorizePublish(ctx, a.app, a.name, "key="+url.QueryEscape(a.key), source, rtsppull.Protocol)
	switch {
	case !v.Allow:
		return rtsppull.Grant{}, errors.New(v.Reason)
	case v.App != "" && v.App != a.app, v.Name != "" && v.Name != a.name:
		// The pull publishes under its configured path only.
		return rtsppull.Grant{}, fmt.Errorf("the key belongs to stream %s/%s, not %s", v.App, v.Name, path)
	}
	return rtsppull.Grant{Tag: v.Tag, Takeover: v.Takeover}, nil
}

func (a *pullAuth) PullDone(_ string, g rtsppull.Grant) {
	a.r.publishDone(a.app, a.name, g.Tag)
}
