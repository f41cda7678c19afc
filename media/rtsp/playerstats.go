package rtsp

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
)

// PlayerStats is one RTSP player's outgoing statistics: what the server
// sent it, and per track what the player says it received (its RTCP
// receiver reports; players over TCP usually send none).
type PlayerStats struct {
	Path       string        `json:"path"`
	RemoteAddr string        `json:"remote_addr"`
	Transport  string        `json:"transport"`
	Packets    uint64        `json:"packets"` // RTP packets sent
	Bytes      uint64        `json:"bytes"`   // RTP and RTCP bytes sent
	Tracks     []PlayerTrack `json:"tracks"`
}

// PlayerTrack is one track of a player: packets sent, and the figures of
// the player's last receiver report (zero, with ReportedAt zero, before
// the first).
type PlayerTrack struct {
	Track       string `json:"track"` // media index in the SDP
	Codec       string `json:"codec"`
	PacketsSent uint64 `json:"packets_sent"`
	// FractionLost is the fraction of packets lost since the player's
	// previous report; Lost is its cumulative count (RFC 3550 6.4.1).
	FractionLost  float64   `json:"fraction_lost"`
	Lost          int64     `json:"lost"`
	JitterSeconds float64   `json:"jitter_seconds"`
	ReportedAt    time.Time `json:"reported_at,omitzero"`
}

// playerReports keeps a player's last receiver report per media. Written
// by gortsplib's RTCP reader, read by PlayerStats; mu guards it and is
// held only for the copy.
type playerReports struct {
	mu   sync.Mutex
	last map[*description.Media]PlayerTrack
}

// watchReports starts recording ss's receiver reports; called at PLAY.
func watchReports(ss *gortsplib.ServerSession) *playerReports {
	pr := &playerReports{last: map[*description.Media]PlayerTrack{}}
	ss.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		rr, ok := pkt.(*rtcp.ReceiverReport)
		if !ok || len(rr.Reports) == 0 || len(m.Formats) == 0 {
			return
		}
		r := rr.Reports[0]
		t := PlayerTrack{FractionLost: float64(r.FractionLost) / 256, Lost: int64(r.TotalLost), ReportedAt: time.Now()}
		if rate := m.Formats[0].ClockRate(); rate > 0 {
			t.JitterSeconds = float64(r.Jitter) / float64(rate)
		}
		pr.mu.Lock()
		pr.last[m] = t
		pr.mu.Unlock()
	})
	return pr
}

// PlayerStats returns every RTSP player's statistics (players past PLAY),
// sorted by path and address.
func (s *Server) PlayerStats() []PlayerStats {
	type player struct {
		path string
		ss   *gortsplib.ServerSession
		st   *sessionState
	}
	s.mu.Lock()
	var list []player
	for o := range s.live {
		for ss := range o.playing {
			st, _ := ss.UserData().(*sessionState)
			list = append(list, player{path: o.path, ss: ss, st: st})
		}
	}
	s.mu.Unlock()
	out := make([]PlayerStats, 0, len(list))
	for _, p := range list {
		// After PLAY gortsplib no longer changes the session's medias
		// and formats: its counters are atomics read here.
		stats := p.ss.Stats()
		ps := PlayerStats{Path: p.path, Transport: transportName(p.ss.SetuppedTransport()), Packets: stats.RTPPacketsSent, Bytes: stats.BytesSent}
		if p.st != nil {
			ps.RemoteAddr = p.st.addr
		}
		var reports map[*description.Media]PlayerTrack
		if p.st != nil && p.st.reports != nil {
			p.st.reports.mu.Lock()
			reports = make(map[*description.Media]PlayerTrack, len(p.st.reports.last))
			for m, t := range p.st.reports.last {
				reports[m] = t
			}
			p.st.reports.mu.Unlock()
		}
		stream := p.ss.SetuppedStream()
		for _, m := range p.ss.SetuppedMedias() {
			t := reports[m]
			t.Track = "?"
			if stream != nil {
				for i, sm := range stream.Desc.Medias {
					if sm == m {
						t.Track = strconv.Itoa(i)
					}
				}
			}
			if len(m.Formats) > 0 {
				t.Codec = m.Formats[0].Codec()
				if ms, ok := stats.Medias[m]; ok {
					for _, fs := range ms.Formats {
						t.PacketsSent += fs.RTPPacketsSent
					}
				}
			}
			ps.Tracks = append(ps.Tracks, t)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].RemoteAddr < out[j].RemoteAddr
	})
	return out
}
