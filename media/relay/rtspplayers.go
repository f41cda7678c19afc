package relay

import (
	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/media/stream"
)

// The hub sees one reader per path that RTSP plays (the RTSP server's
// fan-out), however many RTSP sessions it serves, and counts that reader's
// bytes once. Every figure the relay reports (API, metrics, heartbeats to
// the control plane) goes through streamInfos and totals, which count each
// RTSP session as a player and its bytes as sent.

// rtspPlays returns the RTSP server's player counts (none without RTSP).
func (s *servers) rtspPlays() (map[string]rtsp.PlayCount, rtsp.PlayCount) {
	if s.rtsp == nil {
		return nil, rtsp.PlayCount{}
	}
	return s.rtsp.PlayCounts()
}

// rtspPlayers returns the RTSP players' statistics (none without RTSP).
func (s *servers) rtspPlayers() []rtsp.PlayerStats {
	if s.rtsp == nil {
		return nil
	}
	return s.rtsp.PlayerStats()
}

// streamInfos is hub.Streams with RTSP sessions counted as players.
func (r *Relay) streamInfos() []stream.StreamInfo {
	infos := r.hub.Streams()
	per, _ := r.servers.rtspPlays()
	for i := range infos {
		if pc, ok := per[infos[i].Path]; ok {
			adjustInfo(&infos[i], pc)
		}
	}
	return infos
}

// totals is hub.Totals with RTSP sessions counted as players.
func (r *Relay) totals() stream.Totals {
	t := r.hub.Totals()
	_, pc := r.servers.rtspPlays()
	t.Readers = max(t.Readers+pc.Players-pc.FanOuts, 0)
	t.BytesOut = subFloor(t.BytesOut+pc.BytesOut, pc.HubBytes)
	return t
}

func adjustInfo(si *stream.StreamInfo, pc rtsp.PlayCount) {
	si.Readers = max(si.Readers+pc.Players-pc.FanOuts, 0)
	si.BytesOut = subFloor(si.BytesOut+pc.BytesOut, pc.HubBytes)
}

func subFloor(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
