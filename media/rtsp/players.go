package rtsp

import "github.com/bluenviron/gortsplib/v4"

// PlayCount says how the RTSP server's players stand behind its hub
// readers. The hub sees one reader per played path (the fan-out), however
// many RTSP sessions play it, and counts the bytes that reader took once;
// a relay that reports players and bytes corrects the hub's figures with
// these: readers + Players - FanOuts, bytes out + BytesOut - HubBytes.
type PlayCount struct {
	// FanOuts is the number of hub readers the RTSP server holds.
	FanOuts int `json:"fan_outs"`
	// Players is the number of RTSP sessions playing (SETUP done).
	Players int `json:"players"`
	// HubBytes is what those readers took from the hub; BytesOut is what
	// was sent to players (RTP and RTCP as written to the network, every
	// player's own copy).
	HubBytes uint64 `json:"hub_bytes"`
	BytesOut uint64 `json:"bytes_out"`
}

// PlayCounts returns the counts per path (fan-outs open now: their
// players, the bytes of the current fan-out) and the server's totals
// (bytes since Start: counters that only grow).
func (s *Server) PlayCounts() (map[string]PlayCount, PlayCount) {
	type liveOut struct {
		o       *outStream
		players int
		playing []*gortsplib.ServerSession
		leftOut uint64
	}
	s.mu.Lock()
	total := PlayCount{HubBytes: s.doneHub, BytesOut: s.doneOut}
	outs := make([]liveOut, 0, len(s.live))
	for o := range s.live {
		lo := liveOut{o: o, players: len(o.sessions), leftOut: o.leftOut}
		for ss := range o.playing {
			lo.playing = append(lo.playing, ss)
		}
		outs = append(outs, lo)
	}
	s.mu.Unlock()
	// Byte counters are atomics: read them without the lock.
	per := make(map[string]PlayCount, len(outs))
	for _, lo := range outs {
		pc := per[lo.o.path]
		pc.FanOuts++
		pc.Players += lo.players
		hub := lo.o.reader.BytesOut()
		pc.HubBytes += hub
		out := lo.leftOut
		for _, ss := range lo.playing {
			out += ss.BytesSent()
		}
		pc.BytesOut += out
		per[lo.o.path] = pc
		total.FanOuts++
		total.Players += lo.players
		total.HubBytes += hub
		total.BytesOut += out - lo.leftOut // leftOut is already in doneOut
	}
	return per, total
}
