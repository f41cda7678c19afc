package relay

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/controlclient"
)

// reasonUnreachable is the refusal reason when no decision can be had:
// origins fail closed.
const reasonUnreachable = "control plane unreachable"

// publishVerdict is the control plane's answer to a publish, as the RTMP
// server acts on it.
type publishVerdict struct {
	Allow    bool
	App      string
	Name     string // public stream name to publish under
	Takeover bool
	Reason   string
	// Tag names the publish in the hub (publishTag): the stream and publish
	// ids the control plane answered.
	Tag string
}

// publishTag is the hub tag of the publish publishID of stream streamID,
// as the control plane numbered them; reports and end orders use them.
func publishTag(streamID, publishID int64) string {
	if streamID <= 0 {
		return ""
	}
	return strconv.FormatInt(streamID, 10) + "/" + strconv.FormatInt(publishID, 10)
}

// parsePublishTag is the inverse of publishTag (ok false for no tag).
func parsePublishTag(tag string) (streamID, publishID int64, ok bool) {
	a, b, found := strings.Cut(tag, "/")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseInt(a, 10, 64)
	p, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || s <= 0 || p < 0 {
		return 0, 0, false
	}
	return s, p, true
}

// authorizePublish asks the control plane whether app/name may be published
// here. It fails closed: no answer means no publish.
func (r *Relay) authorizePublish(ctx context.Context, app, name, rawQuery, addr, protocol string) publishVerdict {
	if r.client == nil {
		return publishVerdict{Reason: reasonUnreachable}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := r.client.AuthorizePublish(ctx, nodewire.PublishRequest{Node: r.p.Name, App: app, Name: name,
		Query: rawQuery, Addr: addr, Protocol: protocol})
	if err != nil {
		// Never log the name here: it may be the key.
		r.log.Warn("publish refused: no decision from the control plane", "app", app, "addr", addr, "err", err)
		r.metrics.refusals.Add(1)
		if errors.Is(err, controlclient.ErrUnreachable) {
			return publishVerdict{Reason: reasonUnreachable}
		}
		// A 4xx that is not a decision: this relay's token or request
		// was refused. Still fail closed, with a reason that points there.
		return publishVerdict{Reason: "control plane refused the relay"}
	}
	if !d.Allow {
		reason := d.Reason
		if reason == "" {
			reason = "publish not allowed"
		}
		r.log.Info("publish refused by the control plane", "app", app, "addr", addr, "reason", reason)
		r.metrics.refusals.Add(1)
		return publishVerdict{Reason: reason}
	}
	return publishVerdict{Allow: true, App: d.App, Name: d.Name, Takeover: d.Takeover, Tag: publishTag(d.StreamID, d.PublishID)}
}

// publishDone tells the control plane a publish ended, in the background
// with retries (the heartbeat's published list reconciles it anyway), with
// the stream and publish ids its authorisation answered (tag).
func (r *Relay) publishDone(app, name, tag string) {
	if r.client == nil {
		return
	}
	sid, pid, _ := parsePublishTag(tag)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.client.PublishDone(ctx, r.p.Name, app, name, sid, pid); err != nil {
			if r.closing() { // a clean stop: the node's leave tells the control plane
				r.log.Debug("publish done not delivered while stopping", "path", app+"/"+name, "err", err)
				return
			}
			r.log.Warn("publish done not delivered; the next heartbeat reconciles it", "path", app+"/"+name, "err", err)
		}
	}()
}

// authorizePlay asks whether a player may play app/name. Streams are public
// to play unless the control plane says otherwise, so an unreachable
// control plane does not cut playback (fail open, unlike publishes).
func (r *Relay) authorizePlay(ctx context.Context, app, name, rawQuery, addr string) (bool, string) {
	if r.client == nil {
		return true, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d, err := r.client.AuthorizePlay(ctx, nodewire.PlayRequest{Node: r.p.Name, App: app, Name: name, Query: rawQuery, Addr: addr})
	if err != nil {
		r.log.Warn("play authorisation unavailable; allowing (streams are public to play)", "path", app+"/"+name, "err", err)
		return true, ""
	}
	if !d.Allow {
		reason := d.Reason
		if reason == "" {
			reason = "play not allowed"
		}
		return false, reason
	}
	return true, ""
}
