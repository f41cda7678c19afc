package rtsp

import (
	"sort"

	"github.com/portier/portier/media/rtp"
)

// Stats returns the RTP statistics of every incoming flow (one per SSRC of
// each published track), sorted by path and track, for the relay's API and
// metrics (see media/relay's rtpCollector).
//
// Over TCP-interleaved a flow is measured as the publisher sent it. Over
// UDP, gortsplib restores order with a 64-packet buffer before packets
// reach the server: duplicates and late packets are absorbed there
// (Duplicated and Reordered stay 0) and a gap shows as Lost once the buffer
// gives up waiting for it; jitter then includes that buffer's delay.
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
