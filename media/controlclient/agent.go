package controlclient

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/portier/portier/internal/hoststats"
	"github.com/portier/portier/internal/nodewire"
)

// AgentParams configures RunAgent.
type AgentParams struct {
	Client *Client
	Node   nodewire.NodeInfo
	// Report builds the next heartbeat; called from the agent's goroutine.
	Report func() nodewire.Heartbeat
	// OnEnd, if set, gets the publishes a heartbeat answer says to end
	// (called from the agent's goroutine; it must not block for long).
	OnEnd func([]nodewire.EndOrder)
	// OnPulls, if set, gets the RTSP pulls a heartbeat answer assigns (the
	// full set; answers without the field are not passed on). Called from
	// the agent's goroutine; it must not block for long.
	OnPulls func([]nodewire.PullOrder)
	// DefaultInterval is used until the control plane states one (1 s).
	DefaultInterval time.Duration
	Logger          *slog.Logger
}

// Agent keeps a node registered and heartbeating. Its mutable state is the
// registered flag, read by Registered from any goroutine, and fatal, closed
// once by Run when the control plane refuses the node for good.
type Agent struct {
	p          AgentParams
	log        *slog.Logger
	registered atomic.Bool
	fatal      chan struct{}
	fatalErr   error // written before fatal is closed
	host       *hoststats.Sampler
}

// NewAgent builds an Agent; Run starts it.
func NewAgent(p AgentParams) *Agent {
	if p.DefaultInterval <= 0 {
		p.DefaultInterval = time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Agent{p: p, log: p.Logger.With("component", "cluster-agent", "node", p.Node.Name), fatal: make(chan struct{}),
		host: hoststats.New(p.Node.Version)}
}

// report is the next heartbeat: Report's, with the host's figures.
func (a *Agent) report() nodewire.Heartbeat {
	hb := a.p.Report()
	if hb.Host == nil {
		h := nodewire.HostStats(a.host.Sample())
		hb.Host = &h
	}
	return hb
}

// Registered reports whether the last registration or heartbeat succeeded.
func (a *Agent) Registered() bool { return a.registered.Load() }

// Fatal is closed when the control plane refused the node for good (its
// name is taken by another live node); Err then says why. The node cannot
// serve as part of the cluster and should exit.
func (a *Agent) Fatal() <-chan struct{} { return a.fatal }

// Err is the reason Fatal was closed (nil before).
func (a *Agent) Err() error {
	select {
	case <-a.fatal:
		return a.fatalErr
	default:
		return nil
	}
}

// leave tells the control plane, briefly, that the node stops (a restart
// on other addresses may then take the name at once). Best effort: an
// unreachable control plane lets the name expire with the alive window.
func (a *Agent) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.p.Client.Leave(ctx, a.p.Node); err != nil {
		a.log.Debug("leave not delivered; the name frees when the node's heartbeats lapse", "err", err)
	}
}

// Run registers, then heartbeats at the interval the control plane asks for,
// registering again when the control plane answers 404 (it forgot the node)
// and retrying with backoff while it is unreachable. It returns when ctx
// ends, or at once when a registration is refused because another live
// node holds the name (Fatal).
func (a *Agent) Run(ctx context.Context) {
	interval := a.p.DefaultInterval
	backoff := 200 * time.Millisecond
	needRegister := true
	// held: the control plane holds this node's registration as far as the
	// agent knows. Unlike registered (which a failed call clears, so an
	// origin stops accepting publishes it cannot have authorised), a call
	// failing does not free the name: a heartbeat cut short by shutdown
	// must still be followed by a leave.
	held := false
	failures := 0
	for {
		var err error
		if needRegister {
			var r nodewire.RegisterReply
			r, err = a.p.Client.Register(ctx, a.p.Node)
			var taken *NameTakenError
			if errors.As(err, &taken) {
				a.registered.Store(false)
				a.log.Error("registration refused: node name taken", "err", taken.Message,
					"holder_role", taken.Holder.Role, "holder_rtmp", taken.Holder.RTMPAddress, "holder_http", taken.Holder.HTTPAddress)
				a.fatalErr = err
				close(a.fatal)
				return
			}
			if err == nil {
				needRegister = false
				held = true
				if r.HeartbeatIntervalMS > 0 {
					interval = time.Duration(r.HeartbeatIntervalMS) * time.Millisecond
				}
				a.log.Info("registered with control plane", "control", a.p.Client.Current(), "heartbeat_interval", interval)
			}
		}
		if err == nil {
			var rep HeartbeatReply
			rep, err = a.p.Client.SendHeartbeat(ctx, a.p.Node.Name, a.report())
			switch {
			case errors.Is(err, ErrUnknownNode):
				a.log.Warn("control plane forgot this node; registering again")
				needRegister = true
				held = false
			case err == nil && rep.Interval > 0:
				interval = rep.Interval
			}
			if err == nil && len(rep.End) > 0 && a.p.OnEnd != nil {
				a.p.OnEnd(rep.End)
			}
			if err == nil && rep.Pulls != nil && a.p.OnPulls != nil {
				a.p.OnPulls(rep.Pulls)
			}
		}
		wait := interval
		if err != nil {
			a.registered.Store(false)
			failures++
			if failures == 1 || failures%30 == 0 {
				a.log.Warn("control plane call failed", "err", err, "failures", failures)
			}
			if !errors.Is(err, ErrUnknownNode) {
				wait = backoff
				backoff = min(backoff*2, max(interval, 2*time.Second))
			} else {
				wait = 0
			}
		} else {
			if failures > 0 {
				a.log.Info("control plane reachable again", "control", a.p.Client.Current(), "after_failures", failures)
			}
			failures = 0
			backoff = 200 * time.Millisecond
			a.registered.Store(true)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if held {
				a.leave()
			}
			return
		case <-t.C:
		}
	}
}
