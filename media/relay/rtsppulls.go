package relay

import (
	"errors"
	"fmt"

	"github.com/portier/portier/media/rtsppull"
)

// RTSPPull is one RTSP source an origin pulls into its hub itself (see
// media/rtsppull): no ffmpeg, one depacketisation, reconnect with backoff.
type RTSPPull struct {
	// Path is the hub path ("app/name") players play.
	Path string
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
		pl, err := rtsppull.New(rtsppull.Params{Hub: r.hub, Path: sp.Path, URL: sp.URL, Transport: sp.Transport, Logger: r.p.Logger})
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
