package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/rendezvous"
	"github.com/portier/portier/media/rtmp"
)

// OriginLister lists the live origins (controlclient.Client implements it).
type OriginLister interface {
	LiveOrigins(ctx context.Context) ([]nodewire.Node, error)
}

// NameResolver maps the name a publish arrived with to its stream's public
// name (the key used as the name, OBS style, to the stream's name);
// controlclient.Client implements it.
type NameResolver interface {
	ResolvePublishName(ctx context.Context, app, name string) (string, error)
}

// ForwarderParams configures a Forwarder. Zero durations select defaults.
type ForwarderParams struct {
	// Origins, if set, lists the live origins; when it fails the static
	// list is used.
	Origins OriginLister
	// Names, if set, resolves a publish's name to the public name that is
	// hashed, so that a stream goes to the same origin whether its
	// encoder uses NAME?key=KEY or the key as the name. When it fails, the
	// name as given is hashed.
	Names         NameResolver
	StaticOrigins []string
	// LookupTimeout bounds the origin lookup (default 1 s); DialTimeout
	// bounds connecting and the origin's answer to publish (default 5 s).
	LookupTimeout time.Duration
	DialTimeout   time.Duration
	// IsSelf, if set, tells this relay's own addresses (Edge.IsSelf): a
	// publish is never forwarded to them.
	IsSelf func(addr string) bool
	Logger *slog.Logger
}

// Forwarder sends publishes that reach an edge to one origin, chosen by
// rendezvous hashing of "app/name" over the live origins' RTMP addresses,
// so that every edge sends a given stream to the same origin. It has no
// mutable state.
type Forwarder struct {
	p   ForwarderParams
	log *slog.Logger
}

// ErrNoOrigin: no origin is known to forward a publish to.
var ErrNoOrigin = errors.New("no origin available")

// NewForwarder builds a Forwarder.
func NewForwarder(p ForwarderParams) *Forwarder {
	if p.LookupTimeout <= 0 {
		p.LookupTimeout = time.Second
	}
	if p.DialTimeout <= 0 {
		p.DialTimeout = 5 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Forwarder{p: p, log: p.Logger.With("component", "edge-forward")}
}

// Choose returns the origin (host:port) for app/name, best first followed
// by the fallbacks.
func (f *Forwarder) Choose(ctx context.Context, app, name string) ([]string, error) {
	var addrs []string
	if f.p.Origins != nil {
		lctx, cancel := context.WithTimeout(ctx, f.p.LookupTimeout)
		nodes, err := f.p.Origins.LiveOrigins(lctx)
		cancel()
		if err == nil {
			for _, n := range nodes {
				addrs = append(addrs, n.RTMPAddress)
			}
		} else {
			f.log.Warn("live origins unknown; using the static list", "err", err)
		}
	}
	if len(addrs) == 0 {
		addrs = f.p.StaticOrigins
	}
	if f.p.IsSelf != nil {
		addrs = slices.DeleteFunc(slices.Clone(addrs), func(a string) bool {
			if f.p.IsSelf(a) {
				f.log.Warn("origin refused for forwarding: it is this relay's own address", "origin", a)
				return true
			}
			return false
		})
	}
	if len(addrs) == 0 {
		return nil, ErrNoOrigin
	}
	return rendezvous.Rank(app+"/"+f.publicName(ctx, app, name), addrs), nil
}

// publicName is the name Choose hashes: Names' answer, else name. The
// name may be a key, so it is never logged.
func (f *Forwarder) publicName(ctx context.Context, app, name string) string {
	if f.p.Names == nil {
		return name
	}
	lctx, cancel := context.WithTimeout(ctx, f.p.LookupTimeout)
	defer cancel()
	pub, err := f.p.Names.ResolvePublishName(lctx, app, name)
	if err != nil {
		if !errors.Is(err, controlclient.ErrNotFound) {
			f.log.Warn("publish name not resolved; hashing it as given", "app", app, "err", err)
		}
		return name
	}
	return pub
}

// Forward is one publish forwarded to an origin.
type Forward struct {
	// Origin is the origin's host:port.
	Origin string
	cc     *rtmp.ClientConn
}

// Open connects to the hashed origin and publishes name there with the
// client's query (rawQuery, which carries the key), so the origin authorises
// it as if the encoder had come to it directly. A refusal by the origin is
// returned as the origin's *rtmp.StatusError, to be relayed to the encoder.
// Only the first-ranked origin is used when it answers: publishing the same
// stream to another origin would split it; an unreachable origin is skipped.
func (f *Forwarder) Open(ctx context.Context, app, name, rawQuery string) (*Forward, error) {
	ranked, err := f.Choose(ctx, app, name)
	if err != nil {
		return nil, err
	}
	target := name
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	var errs []error
	for _, addr := range ranked {
		dctx, cancel := context.WithTimeout(ctx, f.p.DialTimeout)
		cc, err := rtmp.Dial(dctx, "rtmp://"+addr+"/"+app, rtmp.ClientConfig{HandshakeTimeout: f.p.DialTimeout, Logger: f.log})
		if err != nil {
			cancel()
			errs = append(errs, fmt.Errorf("origin %s: %w", addr, err))
			continue
		}
		err = cc.Publish(dctx, target)
		cancel()
		if err != nil {
			cc.Close()
			var se *rtmp.StatusError
			if errors.As(err, &se) {
				return nil, se // the origin's answer: do not try another
			}
			errs = append(errs, fmt.Errorf("origin %s: %w", addr, err))
			continue
		}
		return &Forward{Origin: addr, cc: cc}, nil
	}
	return nil, fmt.Errorf("forward publish: %w", errors.Join(errs...))
}

// Write sends one media message to the origin.
func (fw *Forward) Write(msg rtmp.Message) error {
	msg.StreamID = 0
	return fw.cc.WriteMessage(msg)
}

// Close ends the forwarded publish cleanly.
func (fw *Forward) Close() error { return fw.cc.Close() }
