package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/portier/portier/media/rtsppull"
)

// RTSPPull is one RTSP source an origin pulls into its hub itself (see
// media/rtsppull): no ffmpeg, one depacketisation, reconnect with backoff.
type RTSPPull struct {
	// Path is the hub path ("app/name") players play: a stream of the
	// control plane.
	Path string
	// Key is the stream's publish key: each session is authorised by the
	// control plane like an encoder's publish (audited, revocable, live
	// at once). Never logged.
	Key string
	// URL is rtsp://[user:pass@]host[:port]/path of the source.
	URL string
	// Transport is "udp", "tcp" or "" (UDP, then TCP).
	Transport string
}

// buildPulls validates Params.RTSPPulls and builds their pullers (not
// started). Only origins pull: a pulled stream is a publish, and edges
// serve what origins hold.
func (r *Relay) buildPulls() error {
	if len(r.p.RTSPPulls) == 0 {
		return nil
	}
	if r.p.Role != RoleOrigin {
		return errors.New("relay: --rtsp-pull is for origins (an edge serves what origins hold): configure it on an origin")
	}
	seen := map[string]bool{}
	for _, sp := range r.p.RTSPPulls {
		if seen[sp.Path] {
			return fmt.Errorf("relay: --rtsp-pull: path %q is pulled twice", sp.Path)
		}
		seen[sp.Path] = true
		app, name, _ := strings.Cut(sp.Path, "/")
		if sp.Key == "" {
			return fmt.Errorf("relay: --rtsp-pull %s: the stream's key is required (APP/NAME?key=KEY=rtsp://...): the control plane authorises the publish", sp.Path)
		}
		pl, err := rtsppull.New(rtsppull.Params{Hub: r.hub, Path: sp.Path, URL: sp.URL, Transport: sp.Transport, Logger: r.p.Logger,
			Authorizer: &pullAuth{r: r, app: app, name: name, key: sp.Key}})
		if err != nil {
			return fmt.Errorf("relay: --rtsp-pull: %w", err)
		}
		r.pulls = append(r.pulls, pl)
	}
	return nil
}

func (r *Relay) startPulls() {
	for _, pl := range r.pulls {
		pl.Start()
	}
}

func (r *Relay) closePulls() {
	for _, pl := range r.pulls {
		_ = pl.Close()
	}
}

// RTSPPulls is the state of the relay's RTSP pull sources (URLs without
// credentials), in configuration order.
func (r *Relay) RTSPPulls() []rtsppull.Status {
	out := make([]rtsppull.Status, 0, len(r.pulls))
	for _, pl := range r.pulls {
		out = append(out, pl.Status())
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
