package concierge

import "github.com/portier/portier/concierge/wire"

// heartbeatBody is the concierge's next heartbeat: its load and its host's
// figures (version, uptime, CPU, memory).
func (c *Concierge) heartbeatBody() wire.Heartbeat {
	h := wire.HostStats(c.host.Sample())
	return wire.Heartbeat{
		Load: wire.HeartbeatLoad{Streams: int(c.nRunning.Load()), CostUsed: int(c.costUsed.Load())},
		Host: &h,
	}
}
