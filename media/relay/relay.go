// Package relay wires one relay process: the hub, the RTMP server, HTTP-FLV,
// edge pullers and publish forwarding, the control-plane client and its
// heartbeats, and the relay's own HTTP API, metrics and probes. It is what
// `portier relay` runs and what `portier run` embeds.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/edge"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/media/stream"
)

// Roles.
const (
	RoleOrigin = "origin"
	RoleEdge   = "edge"
)

// Params configures a Relay. Zero values select the defaults.
type Params struct {
	// Role is RoleOrigin or RoleEdge.
	Role string
	// Name is the node name registered with the control plane.
	Name string
	// RTMPAddr is the RTMP listen address (e.g. ":1935", "127.0.0.1:0").
	RTMPAddr string
	// RTSPAddr is the RTSP listen address; empty: no RTSP server.
	// RTSPUDPAddr, if set, is the UDP RTP address (RTCP on the next port)
	// for RTSP over UDP; empty: RTSP over TCP only.
	RTSPAddr    string
	RTSPUDPAddr string
	// RTSPUDPReadBuffer is the receive buffer in bytes of each RTSP UDP
	// socket: 0 for rtsp.DefaultUDPReadBuffer, negative for the OS default.
	RTSPUDPReadBuffer int
	// HTTPAddr is the HTTP listen address; empty: no HTTP listener (an
	// embedding program mounts HTTPHandler itself).
	HTTPAddr string
	// AdvertiseAddr / AdvertiseHTTP are the addresses other nodes use to
	// reach this relay; default: the listeners' addresses, with 127.0.0.1
	// for an unspecified host.
	AdvertiseAddr string
	AdvertiseHTTP string
	// ControlURL is the control plane's base URL. Required for origins
	// (publishes are authorised there); an edge without it pulls from
	// StaticOrigins only.
	ControlURL   string
	ClusterToken string
	// HTTPClient for control-plane calls (default: a new client).
	HTTPClient *http.Client
	// StaticOrigins (host:port) are the edge's fallback origins.
	StaticOrigins []string
	// NoOriginTimeout (edge, default 10 s): players wait this long when no
	// origin has their stream, then are told it ended.
	NoOriginTimeout time.Duration
	// IdleTimeout (edge, default 5 s): an upstream session stays open this
	// long after its last player left.
	IdleTimeout time.Duration
	// UpstreamReadTimeout (edge, default 500 ms): silence after which an
	// upstream is considered lost.
	UpstreamReadTimeout time.Duration
	// PublisherGrace: how long players wait for a publisher that left to
	// come back before they are told the stream ended (default 5 s on
	// origins, 1 s on edges, whose own wait is NoOriginTimeout).
	PublisherGrace time.Duration
	// HTTPTimeouts bound slow and idle HTTP clients of HTTPAddr (zero
	// fields: httpserve.DefaultTimeouts); HTTP-FLV streams are exempt
	// from the read and write timeouts and bound each write instead.
	HTTPTimeouts httpserve.Timeouts
	// APIAuth guards the relay API (/api/v1/...), which shows publishers'
	// addresses. Nil: Authorization: Bearer ClusterToken is required (a
	// relay without a cluster token serves its API to nobody). `portier
	// run` passes requests through because it serves the API only behind
	// the control plane's own check (portier.Server.MountRelay).
	APIAuth func(http.Handler) http.Handler
	// RTSPPulls (origins only) are RTSP sources the relay pulls into its
	// hub itself, each under its own path.
	RTSPPulls []RTSPPull
	Capacity  int
	// PlayerWriteFrames is how many video frames each write to an RTMP
	// player or HTTP-FLV viewer carries (0: one, as each arrives); more
	// frames cost less CPU per player and hold the first of them back by
	// up to PlayerWriteFrames-1 frame intervals (never more than
	// stream.CoalesceSpan of media).
	PlayerWriteFrames int
	Version           string
	Labels            map[string]string
	Logger            *slog.Logger
}

func (p *Params) validate() error {
	switch p.Role {
	case RoleOrigin, RoleEdge:
	case "":
		return errors.New("relay: --role is required: origin or edge")
	default:
		return fmt.Errorf("relay: --role %q: want origin or edge", p.Role)
	}
	if p.Name == "" {
		return errors.New("relay: --name is required")
	}
	if p.RTMPAddr == "" {
		return errors.New("relay: --rtmp-addr is required")
	}
	if p.Role == RoleOrigin && p.ControlURL == "" {
		return errors.New("relay: an origin needs --control (publishes are authorised by the control plane)")
	}
	if p.Role == RoleEdge && p.ControlURL == "" && len(p.StaticOrigins) == 0 {
		return errors.New("relay: an edge needs --control or --origins to find origins")
	}
	for _, o := range p.StaticOrigins {
		if _, _, err := net.SplitHostPort(o); err != nil {
			return fmt.Errorf("relay: --origins entry %q: want host:port", o)
		}
	}
	if p.NoOriginTimeout <= 0 {
		p.NoOriginTimeout = 10 * time.Second
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = 5 * time.Second
	}
	if p.PublisherGrace == 0 {
		p.PublisherGrace = 5 * time.Second
		if p.Role == RoleEdge {
			p.PublisherGrace = time.Second
		}
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return nil
}

// Relay is one relay process. New builds it, Start listens and starts its
// goroutines, Close stops everything.
type Relay struct {
	p       Params
	log     *slog.Logger
	hub     *stream.Hub
	client  *controlclient.Client // nil without a control plane
	agent   *controlclient.Agent
	edge    *edge.Edge
	forward *edge.Forwarder
	metrics *metrics
	rates   rates

	pulls pullSet // RTSP sources pulled by this origin

	fwdMu    sync.Mutex // guards forwards; never held across I/O
	forwards map[string]*forwardSession

	rtmpLn  net.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	servers servers // the protocol servers (RTMP, HTTP-FLV)

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	closeMu sync.Mutex
	closed  bool
}

// New validates p and builds the relay (nothing listens yet).
func New(p Params) (*Relay, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	r := &Relay{p: p, log: p.Logger.With("component", "relay", "role", p.Role, "node", p.Name),
		forwards: map[string]*forwardSession{}}
	if p.ControlURL != "" {
		c, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: p.ControlURL, Token: p.ClusterToken,
			HTTPClient: p.HTTPClient, Timeout: 2 * time.Second, Logger: p.Logger,
			ObserveLatency: func(op string, d time.Duration) {
				if r.metrics != nil {
					r.metrics.observe(op, d)
				}
			}})
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		r.client = c
	}
	hp := stream.HubParams{IdleTimeout: p.IdleTimeout, PublisherGrace: p.PublisherGrace, Logger: p.Logger.With("component", "hub")}
	if p.Role == RoleEdge {
		ep := edge.Params{StaticOrigins: p.StaticOrigins, NoOriginTimeout: p.NoOriginTimeout,
			UpstreamReadTimeout: p.UpstreamReadTimeout, Logger: p.Logger}
		fp := edge.ForwarderParams{StaticOrigins: p.StaticOrigins, Logger: p.Logger}
		if r.client != nil {
			ep.Directory = r.client
			fp.Origins, fp.Names = r.client, r.client
		}
		r.edge = edge.New(ep)
		fp.IsSelf = r.edge.IsSelf
		r.forward = edge.NewForwarder(fp)
		hp.OnDemand = r.edge.OnDemand
		// Players may wait for an origin for up to NoOriginTimeout.
		hp.OnDemandWait = p.NoOriginTimeout
	}
	r.hub = stream.NewHub(hp)
	if r.edge != nil {
		r.edge.SetHub(r.hub)
	}
	if err := r.SetRTSPPulls(p.RTSPPulls); err != nil {
		return nil, err
	}
	r.metrics = newMetrics(p.Role, p.Name, r.totals, r.edge, &r.rates, r.servers.rtpFlows)
	r.metrics.udpDrops = r.servers.udpDrops
	if err := r.servers.build(r); err != nil {
		return nil, err
	}
	return r, nil
}

// Hub is the relay's stream hub.
func (r *Relay) Hub() *stream.Hub { return r.hub }

// Edge is the edge's puller registry (nil on origins).
func (r *Relay) Edge() *edge.Edge { return r.edge }

// Start listens on the RTMP (and, if set, HTTP) address, registers with the
// control plane and starts heartbeating. It returns once the listeners are
// open; the relay runs until Close (or until ctx ends).
func (r *Relay) Start(ctx context.Context) error {
	if r.started {
		return errors.New("relay: already started")
	}
	r.started = true
	var err error
	if r.rtmpLn, err = net.Listen("tcp", r.p.RTMPAddr); err != nil {
		return fmt.Errorf("relay: listen RTMP %s: %w", r.p.RTMPAddr, err)
	}
	if r.p.HTTPAddr != "" {
		if r.httpLn, err = net.Listen("tcp", r.p.HTTPAddr); err != nil {
			r.rtmpLn.Close()
			return fmt.Errorf("relay: listen HTTP %s: %w", r.p.HTTPAddr, err)
		}
	}
	if r.edge != nil {
		// Before anything can pull: an edge never pulls from itself.
		r.edge.SetSelf(r.rtmpLn.Addr().String(), r.AdvertisedRTMP(), r.p.AdvertiseAddr)
	}
	ctx, r.cancel = context.WithCancel(ctx)
	if err := r.servers.start(ctx, r); err != nil {
		r.rtmpLn.Close()
		if r.httpLn != nil {
			r.httpLn.Close()
		}
		r.cancel()
		return err
	}
	if r.httpLn != nil {
		r.httpSrv = httpserve.NewServer(r.HTTPHandler(), r.p.HTTPTimeouts)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := r.httpSrv.Serve(r.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	r.startPulls()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.sampleRates(ctx) }()
	if r.client != nil {
		host, _ := os.Hostname()
		r.agent = controlclient.NewAgent(controlclient.AgentParams{Client: r.client, Logger: r.p.Logger, Report: r.report, OnEnd: r.endPublishes, OnPulls: r.assignPulls,
			Node: nodewire.NodeInfo{Name: r.p.Name, Role: r.p.Role, RTMPAddress: r.AdvertisedRTMP(),
				HTTPAddress: r.AdvertisedHTTP(), Capacity: r.p.Capacity, Labels: r.p.Labels, Version: r.p.Version, Host: host,
				Capabilities: r.capabilities()}})
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.agent.Run(ctx) }()
	}
	r.log.Info("relay listening", "rtmp", r.rtmpLn.Addr().String(), "http", r.HTTPAddr().String(),
		"control", controlForLog(r.client), "static_origins", strings.Join(r.p.StaticOrigins, ","))
	return nil
}

// Fatal is closed when the relay cannot go on as part of the cluster: the
// control plane refused its registration because a live node of another
// role or address holds its name. Err says why. Nil-safe before Start (a
// nil channel: never closed).
func (r *Relay) Fatal() <-chan struct{} {
	if r.agent == nil {
		return nil
	}
	return r.agent.Fatal()
}

// Err is why Fatal was closed (nil before).
func (r *Relay) Err() error {
	if r.agent == nil {
		return nil
	}
	return r.agent.Err()
}

func controlForLog(c *controlclient.Client) string {
	if c == nil {
		return ""
	}
	return c.BaseURL()
}

// Close stops accepting, ends every session and waits for the goroutines.
func (r *Relay) Close() error {
	r.closeMu.Lock()
	if r.closed {
		r.closeMu.Unlock()
		return nil
	}
	r.closed = true
	r.closeMu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	if r.httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = r.httpSrv.Shutdown(sctx)
		cancel()
	}
	r.servers.close()
	r.closePulls()
	r.closeForwards()
	if r.rtmpLn != nil {
		r.rtmpLn.Close()
	}
	r.hub.Close()
	r.wg.Wait()
	return nil
}

// RTSPAddr is the RTSP server's address (after Start; empty without RTSP).
func (r *Relay) RTSPAddr() net.Addr {
	if r.servers.rtsp == nil {
		return noAddr{}
	}
	return r.servers.rtsp.Addr()
}

// RTMPAddr is the RTMP listener's address (after Start).
func (r *Relay) RTMPAddr() net.Addr { return addrOf(r.rtmpLn) }

// HTTPAddr is the HTTP listener's address (after Start; nil-safe).
func (r *Relay) HTTPAddr() net.Addr { return addrOf(r.httpLn) }

type noAddr struct{}

func (noAddr) Network() string { return "tcp" }
func (noAddr) String() string  { return "" }

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return noAddr{}
	}
	return ln.Addr()
}

// AdvertisedRTMP is the RTMP address registered with the control plane.
func (r *Relay) AdvertisedRTMP() string {
	return controlclient.AdvertiseAddr(r.p.AdvertiseAddr, r.rtmpLn)
}

// AdvertisedHTTP is the HTTP address registered with the control plane.
func (r *Relay) AdvertisedHTTP() string {
	return controlclient.AdvertiseAddr(r.p.AdvertiseHTTP, r.httpLn)
}

// closing reports whether Close has begun.
func (r *Relay) closing() bool {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	return r.closed
}

// Ready reports whether the relay serves: listeners open and, for an
// origin, registered with the control plane (it cannot accept publishes
// otherwise). An edge serves players from its static origins without the
// control plane, so it does not wait for registration.
func (r *Relay) Ready() (bool, string) {
	switch {
	case r.closing():
		return false, "closing"
	case r.rtmpLn == nil:
		return false, "not started"
	case r.p.Role == RoleOrigin && r.agent != nil && !r.agent.Registered():
		return false, "not registered with the control plane"
	}
	return true, ""
}

// report builds a heartbeat: load, every stream's statistics, and for
// origins the streams whose publish this relay holds.
func (r *Relay) report() nodewire.Heartbeat {
	t := r.totals()
	in, out := r.rates.get()
	// Players and publishers of every protocol; an edge's upstream
	// sessions are publishers and its forwarded publishes readers.
	conns := t.Readers + t.Publishers
	hb := nodewire.Heartbeat{Load: nodewire.Load{Connections: conns, Streams: t.Streams, BitrateIn: in, BitrateOut: out}}
	infos := r.streamInfos()
	if r.p.Role == RoleOrigin {
		hb.Published = r.hub.Published()
		hb.Publishes = make([]nodewire.PublishedStream, 0, len(hb.Published))
		for _, si := range infos {
			if !si.Live {
				continue
			}
			// A publish without a tag (none in practice: every publish
			// here was authorised) is reported with its path only.
			sid, pid, _ := parsePublishTag(si.Publisher.Tag)
			hb.Publishes = append(hb.Publishes, nodewire.PublishedStream{Path: si.Path, StreamID: sid, PublishID: pid})
		}
	}
	hb.Streams = streamReports(infos)
	hb.Pulls = r.pullReports()
	return hb
}

// capabilities are what the relay registers it can do beyond its role.
func (r *Relay) capabilities() []string {
	if r.p.Role == RoleOrigin {
		return []string{nodewire.CapRTSPPull}
	}
	return nil
}

// endPublishes ends the publishes the control plane revoked (their stream
// was deleted or disabled, its key rotated, or an operator kicked the
// publisher). Only the publish the order
// names is ended: a newer publish of the same path is left alone.
func (r *Relay) endPublishes(orders []nodewire.EndOrder) {
	for _, o := range orders {
		if r.hub.EndPublish(o.Path, publishTag(o.StreamID, o.PublishID)) {
			r.log.Info("publish ended by the control plane", "path", o.Path, "stream", o.StreamID, "publish", o.PublishID, "reason", o.Reason)
		}
	}
}

// streamReports turns hub snapshots into heartbeat stream reports. Streams
// with neither a publisher nor players (an edge waiting for an origin, a
// publisher in its grace time) are left out.
func streamReports(infos []stream.StreamInfo) []nodewire.StreamReport {
	out := make([]nodewire.StreamReport, 0, len(infos))
	for _, si := range infos {
		if !si.Live && si.Readers == 0 {
			continue
		}
		c := si.Codec
		out = append(out, nodewire.StreamReport{
			Path: si.Path, Publisher: si.Live, VideoCodec: c.VideoCodec, Width: c.Width, Height: c.Height,
			FPS: si.FPS, AudioCodec: c.AudioCodec, SampleRate: c.SampleRate, Channels: c.Channels,
			BitrateIn: int64(si.BitrateIn), Players: si.Readers - si.InternalReaders,
			GOPMillis: si.GOPMillis, GOPFrames: si.GOPFrames,
		})
		if si.Live {
			r := &out[len(out)-1]
			r.PublisherAddr, r.PublisherProtocol, r.Encoder = si.Publisher.RemoteAddr, si.Publisher.Protocol, si.Publisher.Encoder
		}
	}
	return out
}

func (r *Relay) sampleRates(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	r.rates.sample(r.totals(), time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.rates.sample(r.totals(), now)
		}
	}
}
