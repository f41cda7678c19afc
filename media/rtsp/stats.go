package rtsp

import (
	"sort"

	"github.com/portier/portier/media/rtp"
)

// Stats returns the RTP statistics of every incoming flow (one per SSRC of
// each published track), sorted by path and track, for the relay's API and
// metrics (see media/relay's rtpCollector).
//
// Flows are measured where packets arrive: over TCP-interleaved as the
// publisher sent them, over UDP as each datagram is read from the socket,
// before the reorder buffer (see steer.go), so duplicates, reordering and
// jitter are those of the wire. Packets that arrived too late for the
// reorder buffer count as LateDiscarded, not as Lost. Where the per-track
// socket cannot be opened (not Linux), UDP flows are measured after
// gortsplib's reorder buffer, as its callbacks deliver them.
func (s *Server) Stats() []rtp.Flow {
	s.mu.Lock()
	pubs := make([]*publishSession, 0, len(s.pubs))
	for p := range s.pubs {
		pubs = append(pubs, p)
	}
	s.mu.Unlock()
	var out []rtp.Flow
	for _, p := range pubs {
		var transport string
		if t := p.transport.Load(); t != nil {
			transport = *t
		}
		for _, f := range p.flows {
			for _, sn := range f.snapshots() {
				out = append(out, rtp.Flow{Path: p.path, Track: f.track, Codec: f.codec, Direction: "in",
					Transport: transport, RemoteAddr: p.addr, Snapshot: sn})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		if out[i].Track != out[j].Track {
			return out[i].Track < out[j].Track
		}
		return out[i].First.Before(out[j].First)
	})
	return out
}
