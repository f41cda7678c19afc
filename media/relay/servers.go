package relay

import (
	"context"
	"fmt"
	"net/http"

	"github.com/portier/portier/media/rtmpserver"
)

// servers holds the protocol servers of a relay.
type servers struct {
	rtmp *rtmpserver.Server
	flv  http.Handler
}

// build creates what serves HTTP (usable before Start, for embedding).
func (s *servers) build(r *Relay) error { return s.buildFLV(r) }

// start creates the RTMP server on the relay's listener and starts it.
func (s *servers) start(_ context.Context, r *Relay) error {
	p := rtmpserver.Params{
		Listener:      r.rtmpLn,
		Hub:           r.hub,
		AuthorizePlay: r.rtmpAuthorizePlay,
		Logger:        r.p.Logger,
	}
	if r.p.Role == RoleOrigin {
		p.Authorize = r.rtmpAuthorizePublish
		p.PublishDone = r.publishDone
	} else {
		p.Authorize = r.forwardAuthorize
		p.PublishDone = r.forwardDone
	}
	srv, err := rtmpserver.New(p)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	s.rtmp = srv
	return nil
}

func (s *servers) close() {
	if s.rtmp != nil {
		_ = s.rtmp.Close()
	}
}

// conns is the number of open RTMP connections.
func (s *servers) conns() int {
	if s.rtmp == nil {
		return 0
	}
	return s.rtmp.Conns()
}

func (r *Relay) rtmpAuthorizePublish(ctx context.Context, req rtmpserver.AuthRequest) (rtmpserver.AuthResult, error) {
	v := r.authorizePublish(ctx, req.App, req.Name, req.RawQuery, req.Addr, req.Protocol)
	if v.Allow && v.App != "" && v.App != req.App {
		// The control plane answered for another application: the RTMP
		// server publishes under the client's app, so refuse clearly.
		return rtmpserver.AuthResult{Reason: fmt.Sprintf("stream belongs to application %q", v.App)}, nil
	}
	return rtmpserver.AuthResult{Allow: v.Allow, Name: v.Name, Reason: v.Reason, Takeover: v.Takeover}, nil
}

func (r *Relay) rtmpAuthorizePlay(ctx context.Context, req rtmpserver.AuthRequest) (rtmpserver.AuthResult, error) {
	ok, reason := r.authorizePlay(ctx, req.App, req.Name, req.RawQuery, req.Addr)
	return rtmpserver.AuthResult{Allow: ok, Name: req.Name, Reason: reason}, nil
}
