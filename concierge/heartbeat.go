package concierge

import (
	"context"
	"net/http"
	"net/url"

	"github.com/portier/portier/concierge/wire"
)

// heartbeatBody is the concierge's next heartbeat: its load and its host's
// figures (version, uptime, CPU, memory).
func (c *Concierge) heartbeatBody() wire.Heartbeat {
	h := wire.HostStats(c.host.Sample())
	return wire.Heartbeat{
		Load: wire.HeartbeatLoad{Streams: int(c.nRunning.Load()), CostUsed: int(c.costUsed.Load())},
		Host: &h,
	}
}

// sendHeartbeat posts hb to the node API. (control.heartbeat sends the load
// alone; this one carries the host figures of wire.Heartbeat.)
func (c *control) sendHeartbeat(ctx context.Context, name string, hb wire.Heartbeat) error {
	return c.do(ctx, http.MethodPost, "/internal/v1/nodes/"+url.PathEscape(name)+"/heartbeat", hb, nil)
}
