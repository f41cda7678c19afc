package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/portier/portier/media/edge"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/rtmpserver"
	"github.com/portier/portier/media/stream"
)

// A publish that reaches an edge is forwarded to the origin chosen by
// consistent hashing. The edge does not decide on it: it opens the publish
// at the origin with the client's name and query before accepting the
// client, so the origin's answer (after its own authorisation) is the
// edge's answer, refusals included. Accepted publishes go into the edge's
// hub under a private name ("forward-<random>": the client's name may be
// its key, and players of the public name pull it from the origin like any
// other stream), and a pump copies them from the hub to the origin.

// forwardSession is one forwarded publish.
type forwardSession struct {
	path   string // local hub path
	fw     *edge.Forward
	cancel context.CancelFunc
	done   chan struct{}
}

// ForwardedPrefix starts the private stream names of forwarded publishes.
const ForwardedPrefix = "forward-"

func (r *Relay) forwardAuthorize(ctx context.Context, req rtmpserver.AuthRequest) (rtmpserver.AuthResult, error) {
	fw, err := r.forward.Open(ctx, req.App, req.Name, req.RawQuery)
	if err != nil {
		r.metrics.refusals.Add(1)
		var se *rtmp.StatusError
		if errors.As(err, &se) {
			reason := se.Description
			if reason == "" {
				reason = se.Code
			}
			r.log.Info("forwarded publish refused by the origin", "app", req.App, "addr", req.Addr, "reason", reason)
			return rtmpserver.AuthResult{Reason: reason}, nil
		}
		r.log.Warn("publish refused: no origin to forward to", "app", req.App, "addr", req.Addr, "err", err)
		return rtmpserver.AuthResult{Reason: "no origin reachable"}, nil
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	local := ForwardedPrefix + hex.EncodeToString(id[:])
	fctx, cancel := context.WithCancel(context.Background())
	fs := &forwardSession{path: req.App + "/" + local, fw: fw, cancel: cancel, done: make(chan struct{})}
	r.fwdMu.Lock()
	r.forwards[fs.path] = fs
	r.fwdMu.Unlock()
	r.metrics.forwarding.Add(1)
	r.metrics.forwarded.Add(1)
	r.log.Info("publish forwarded", "app", req.App, "local", fs.path, "origin", fw.Origin, "addr", req.Addr)
	go r.pumpForward(fctx, fs)
	return rtmpserver.AuthResult{Allow: true, Name: local}, nil
}

// forwardDone ends the forward when the client's publish ended.
func (r *Relay) forwardDone(app, name, _ string) {
	r.fwdMu.Lock()
	fs := r.forwards[app+"/"+name]
	r.fwdMu.Unlock()
	if fs != nil {
		fs.cancel()
	}
}

// Forwards maps the private hub path of each forwarded publish to its origin.
func (r *Relay) Forwards() map[string]string {
	r.fwdMu.Lock()
	defer r.fwdMu.Unlock()
	m := make(map[string]string, len(r.forwards))
	for p, fs := range r.forwards {
		m[p] = fs.fw.Origin
	}
	return m
}

// pumpForward copies the forwarded stream from the edge's hub to the origin.
// If the origin goes away, the client's publish is ended (by taking its
// path over and closing it) so the encoder reconnects and is hashed again.
func (r *Relay) pumpForward(ctx context.Context, fs *forwardSession) {
	defer close(fs.done)
	defer func() {
		r.fwdMu.Lock()
		delete(r.forwards, fs.path)
		r.fwdMu.Unlock()
		r.metrics.forwarding.Add(-1)
		_ = fs.fw.Close()
	}()
	// The RTMP server publishes into the hub right after authorising; read
	// only once it has, so the read never starts an edge pull for the path.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if si, ok := r.hub.Stream(fs.path); ok && si.Live {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	rd, err := r.hub.Read(ctx, fs.path, stream.ReaderParams{MaxUnits: 4096, MaxBytes: 32 << 20})
	if err != nil {
		return
	}
	defer rd.Close()
	for {
		units, err := rd.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, stream.ErrEnded) {
				// Dropped for falling behind: the origin link is too slow.
				r.log.Warn("forward to origin fell behind; ending the publish", "local", fs.path, "origin", fs.fw.Origin, "err", err)
				r.kickPublisher(fs.path)
			}
			return
		}
		for _, u := range units {
			if err := fs.fw.Write(messageOf(u)); err != nil {
				if ctx.Err() == nil {
					r.log.Warn("forward to origin failed; ending the publish", "local", fs.path, "origin", fs.fw.Origin, "err", err)
					r.kickPublisher(fs.path)
				}
				return
			}
		}
	}
}

// kickPublisher ends the publish of path by taking it over and closing.
func (r *Relay) kickPublisher(path string) {
	if p, err := r.hub.Publish(path, stream.PublisherInfo{Protocol: "relay-kick", Takeover: true}); err == nil {
		p.Close()
	}
}

// messageOf turns a hub unit back into an RTMP message.
func messageOf(u *stream.Unit) rtmp.Message {
	m := rtmp.Message{Timestamp: uint32(u.DTS), Payload: u.Payload}
	switch u.Kind {
	case stream.KindVideo:
		m.Type = rtmp.TypeVideo
	case stream.KindAudio:
		m.Type = rtmp.TypeAudio
	default:
		m.Type = rtmp.TypeDataAMF0
	}
	return m
}

// closeForwards ends every forward (relay shutdown).
func (r *Relay) closeForwards() {
	r.fwdMu.Lock()
	list := make([]*forwardSession, 0, len(r.forwards))
	for _, fs := range r.forwards {
		list = append(list, fs)
	}
	r.fwdMu.Unlock()
	for _, fs := range list {
		fs.cancel()
		<-fs.done
	}
}
