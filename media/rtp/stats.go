// Package rtp measures RTP flows from their packet headers: packets, bytes,
// lost packets (sequence gaps, across 16-bit wrap), duplicates, reordering,
// packets a reorder buffer discarded as late, and interarrival jitter
// (RFC 3550 section 6.4.1 and appendix A.8). It also holds the reorder
// buffer a receiver puts between counting and depacketising. It is pure:
// it reads packets and arrival times given to it and opens no sockets.
package rtp

import (
	"math"
	"sync"
	"time"

	pionrtp "github.com/pion/rtp"
)

// Limits of the sequence-number tracking, as in RFC 3550 appendix A.1.
const (
	// MaxDropout is the largest forward jump of the sequence number that is
	// taken as loss; a larger jump is a suspected sender restart.
	MaxDropout = 3000
	// MaxMisorder is how far behind the highest sequence number a packet
	// may arrive and still count as reordered (or duplicated); a packet
	// further behind is a suspected sender restart.
	MaxMisorder = 100
)

// window is the number of recent sequence numbers remembered to tell a
// late packet (reordered) from a repeated one (duplicate). It covers
// MaxMisorder.
const window = 128

// Stats holds the counters of one RTP flow (one SSRC of one track). The
// clock rate is the RTP timestamp rate of the flow's format (90000 for
// video, the sample rate for most audio); with 0, jitter is not computed.
//
// Concurrency: Update and Snapshot may be called from any goroutine; a
// mutex guards the state and is never held across anything but arithmetic.
type Stats struct {
	mu        sync.Mutex
	clockRate float64

	started   bool
	ssrc      uint32
	pt        uint8
	first     time.Time
	last      time.Time
	packets   uint64
	bytes     uint64
	lost      int64 // gaps minus late arrivals that filled them; never below 0
	dups      uint64
	reordered uint64
	resets    uint64
	strays    uint64 // packets after a suspicious jump that no second packet confirmed
	late      uint64 // received, but thrown away by the receiver's reorder buffer
	foreign   uint64 // packets of another SSRC

	hasSeq  bool          // maxExt is set
	baseExt int64         // extended sequence number the current epoch starts at
	maxExt  int64         // extended highest sequence number seen
	seen    [window]int64 // seen[ext%window] == ext+1 when ext was received
	badSeq  int64         // after a suspicious jump: the sequence number that confirms a restart, or -1
	jitOK   bool          // tsPrev/atPrev are set
	tsPrev  uint32        // RTP timestamp of the previous packet used for jitter
	atPrev  time.Time     // its arrival
	jitter  float64       // in timestamp units
}

// NewStats returns the counters of a flow whose RTP clock runs at clockRate Hz.
func NewStats(clockRate int) *Stats {
	return &Stats{clockRate: float64(max(clockRate, 0)), badSeq: -1}
}

// Arrival is what Update made of a packet.
type Arrival uint8

// Arrivals.
const (
	// ArrivalInOrder: a new sequence number above every one seen.
	ArrivalInOrder Arrival = iota
	// ArrivalReordered: a new sequence number below the highest seen.
	ArrivalReordered
	// ArrivalDuplicate: a sequence number already received.
	ArrivalDuplicate
	// ArrivalIgnored: a stray after a suspicious jump, or another SSRC.
	ArrivalIgnored
)

// Update accounts for one received packet that arrived at the given time
// and says how it was counted. For figures that match the wire, call it
// where the packet arrives (before any reorder buffer) with the time it
// was read from the socket. Packets of another SSRC than the first one
// seen are counted as ignored: use one Stats per SSRC.
func (s *Stats) Update(pkt *pionrtp.Packet, arrival time.Time) Arrival {
	if pkt == nil {
		return ArrivalIgnored
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		s.ssrc = pkt.SSRC
		s.pt = pkt.PayloadType
		s.first = arrival
	} else if pkt.SSRC != s.ssrc {
		s.foreign++
		return ArrivalIgnored
	}
	s.packets++
	s.bytes += uint64(pkt.MarshalSize())
	s.last = arrival

	a := s.sequence(pkt.SequenceNumber)
	if a == ArrivalInOrder || a == ArrivalReordered {
		s.updateJitter(pkt.Timestamp, arrival)
	}
	return a
}

// LateDiscarded counts a packet that arrived (Update counted it, and it is
// not lost) but that the receiver's reorder buffer threw away because it
// had already stopped waiting for it.
func (s *Stats) LateDiscarded() {
	s.mu.Lock()
	s.late++
	s.mu.Unlock()
}

// sequence updates the loss, duplicate and reorder counters for seq and
// classifies the packet; only new packets (in order or reordered) feed the
// jitter estimate.
func (s *Stats) sequence(seq uint16) Arrival {
	if !s.hasSeq {
		s.hasSeq = true
		s.restart(seq)
		return ArrivalInOrder
	}
	// Extend seq to the 64-bit value closest to the highest seen.
	delta := int64(int16(seq - uint16(s.maxExt)))
	ext := s.maxExt + delta
	switch {
	case delta > 0 && delta < MaxDropout:
		s.lost += delta - 1
		s.maxExt = ext
		s.mark(ext)
		s.badSeq = -1
		return ArrivalInOrder
	case delta <= 0 && delta > -MaxMisorder:
		if s.isSeen(ext) {
			s.dups++
			return ArrivalDuplicate
		}
		s.mark(ext)
		s.reordered++
		if ext < s.baseExt {
			// Sent before the first packet we saw: the epoch starts
			// earlier, and the numbers in between are missing.
			s.lost += s.baseExt - ext - 1
			s.baseExt = ext
		} else if s.lost > 0 {
			s.lost-- // it filled a gap counted as loss
		}
		return ArrivalReordered
	default:
		// A jump too large to be loss or reordering: the sender
		// probably restarted. Two packets in sequence confirm it
		// (RFC 3550 A.1); until then the packet is a stray.
		if int64(seq) == s.badSeq {
			// The stray before this packet starts the new epoch.
			s.strays--
			s.resets++
			s.restart(seq - 1)
			s.maxExt++
			s.mark(s.maxExt)
			return ArrivalInOrder
		}
		s.badSeq = int64(seq + 1)
		s.strays++
		return ArrivalIgnored
	}
}

// restart begins a new sequence epoch at seq, keeping the counters. The
// extended numbering stays increasing across epochs.
func (s *Stats) restart(seq uint16) {
	s.seen = [window]int64{}
	// The first epoch starts one cycle up so that packets from before the
	// first one seen keep non-negative extended numbers.
	base := int64(1 << 16)
	if s.maxExt > 0 {
		base = (s.maxExt | 0xffff) + 1
	}
	s.maxExt = base + int64(seq)
	s.baseExt = s.maxExt
	s.mark(s.maxExt)
	s.badSeq = -1
	s.jitOK = false
}

func (s *Stats) mark(ext int64)        { s.seen[ext%window] = ext + 1 }
func (s *Stats) isSeen(ext int64) bool { return ext >= 0 && s.seen[ext%window] == ext+1 }

// updateJitter applies RFC 3550 6.4.1: D = (Rj-Ri) - (Sj-Si) in timestamp
// units, J += (|D| - J) / 16.
func (s *Stats) updateJitter(ts uint32, arrival time.Time) {
	if s.clockRate == 0 {
		return
	}
	if s.jitOK {
		d := arrival.Sub(s.atPrev).Seconds()*s.clockRate - float64(int32(ts-s.tsPrev))
		s.jitter += (math.Abs(d) - s.jitter) / 16
	}
	s.tsPrev, s.atPrev, s.jitOK = ts, arrival, true
}

// Snapshot is a point-in-time copy of a flow's counters. Counters only grow
// (Lost may shrink when a late packet fills a gap); Jitter is a gauge.
type Snapshot struct {
	SSRC        uint32 `json:"ssrc"`
	PayloadType uint8  `json:"payload_type"`
	ClockRate   int    `json:"clock_rate"`
	// Packets and Bytes count every packet of the SSRC (Bytes: RTP header
	// and payload, as marshalled).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Expected is how many packets the sequence numbers say were sent.
	Expected uint64 `json:"expected"`
	// Lost is the number of sequence numbers never received.
	Lost uint64 `json:"lost"`
	// Duplicated counts packets whose sequence number was already received;
	// Reordered counts packets that arrived after a higher sequence number.
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	// Resets counts sender restarts (sequence jumps confirmed by a second
	// packet); Ignored counts strays and packets of another SSRC.
	Resets  uint64 `json:"resets"`
	Ignored uint64 `json:"ignored"`
	// LateDiscarded counts packets that arrived but too late for the
	// receiver's reorder buffer, which had given up waiting for them. They
	// are received, not lost: the wire delivered them, the relay could not
	// use them.
	LateDiscarded uint64 `json:"late_discarded"`
	// Jitter is the interarrival jitter in RTP timestamp units and in seconds.
	Jitter        float64 `json:"jitter"`
	JitterSeconds float64 `json:"jitter_seconds"`
	// FractionLost is Lost/Expected over the flow's lifetime (0 to 1).
	FractionLost float64   `json:"fraction_lost"`
	First        time.Time `json:"first,omitzero"`
	Last         time.Time `json:"last,omitzero"`
}

// Snapshot returns the flow's counters now.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		SSRC: s.ssrc, PayloadType: s.pt, ClockRate: int(s.clockRate),
		Packets: s.packets, Bytes: s.bytes,
		Duplicated: s.dups, Reordered: s.reordered, Resets: s.resets, Ignored: s.strays + s.foreign, LateDiscarded: s.late,
		Jitter: s.jitter, First: s.first, Last: s.last,
	}
	if s.lost > 0 {
		snap.Lost = uint64(s.lost)
	}
	// Packets that took part in sequence accounting: unique arrivals.
	unique := s.packets - s.dups - s.strays
	snap.Expected = unique + snap.Lost
	if snap.Expected > 0 {
		snap.FractionLost = float64(snap.Lost) / float64(snap.Expected)
	}
	if s.clockRate > 0 {
		snap.JitterSeconds = s.jitter / s.clockRate
	}
	return snap
}
