package relay

import (
	"context"
	"fmt"
	"net/url"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/httpflv"
	"github.com/portier/portier/media/rtmpserver"
	"github.com/portier/portier/media/rtp"
	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/media/stream"
)

// servers holds the protocol servers of a relay.
type servers struct {
	rtmp *rtmpserver.Server
	rtsp *rtsp.Server // nil without Params.RTSPAddr
	flv  *httpflv.Handler
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
		IsInternal: func(path string, q url.Values) bool {
			return nodewire.IsInternalPlay(r.p.ClusterToken, path, q)
		},
		Reader: stream.ReaderParams{CoalesceFrames: r.p.PlayerWriteFrames},
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
	if r.p.RTSPAddr == "" {
		return nil
	}
	rp := rtsp.Params{Addr: r.p.RTSPAddr, UDPRTPAddr: r.p.RTSPUDPAddr, UDPReadBuffer: r.p.RTSPUDPReadBuffer, Hub: r.hub, Logger: r.p.Logger,
		Authorize:     rtspAuth(p.Authorize),
		AuthorizePlay: rtspAuth(p.AuthorizePlay),
		PublishDone:   p.PublishDone,
	}
	if r.p.Role == RoleEdge {
		// Players wait for the edge's pull like RTMP players do.
		rp.PlayWait = r.p.NoOriginTimeout
	}
	rs, err := rtsp.New(rp)
	if err == nil {
		err = rs.Start()
	}
	if err != nil {
		_ = srv.Close()
		s.rtmp = nil
		return fmt.Errorf("relay: %w", err)
	}
	s.rtsp = rs
	return nil
}

// rtspAuth adapts an RTMP decision function to RTSP (the request and
// result types have the same fields).
func rtspAuth(fn rtmpserver.AuthorizeFunc) rtsp.AuthorizeFunc {
	return func(ctx context.Context, req rtsp.AuthRequest) (rtsp.AuthResult, error) {
		res, err := fn(ctx, rtmpserver.AuthRequest(req))
		return rtsp.AuthResult(res), err
	}
}

func (s *servers) close() {
	if s.flv != nil {
		s.flv.Close()
	}
	if s.rtsp != nil {
		_ = s.rtsp.Close()
	}
	if s.rtmp != nil {
		_ = s.rtmp.Close()
	}
}

// rtpFlows lists the RTP flows of RTSP publishes (none without RTSP).
func (s *servers) rtpFlows() []rtp.Flow {
	if s.rtsp == nil {
		return nil
	}
	return s.rtsp.Stats()
}

// udpDrops is the RTSP server's UDP socket drops (see rtsp.Server.UDPDrops).
func (s *servers) udpDrops() (uint64, bool) {
	if s.rtsp == nil {
		return 0, false
	}
	return s.rtsp.UDPDrops()
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
	return rtmpserver.AuthResult{Allow: v.Allow, Name: v.Name, Reason: v.Reason, Takeover: v.Takeover, Tag: v.Tag}, nil
}

func (r *Relay) rtmpAuthorizePlay(ctx context.Context, req rtmpserver.AuthRequest) (rtmpserver.AuthResult, error) {
	ok, reason := r.authorizePlay(ctx, req.App, req.Name, req.RawQuery, req.Addr)
	return rtmpserver.AuthResult{Allow: ok, Name: req.Name, Reason: reason}, nil
}
