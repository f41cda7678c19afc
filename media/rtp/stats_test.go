package rtp

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pkt(seq uint16, ts uint32) *pionrtp.Packet {
	return &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234}, Payload: make([]byte, 100)}
}

func TestSequenceAccounting(t *testing.T) {
	cases := []struct {
		name                                         string
		seqs                                         []uint16
		packets, expected, lost, dups, reord, resets uint64
		ignored                                      uint64
	}{
		{name: "in order", seqs: []uint16{1, 2, 3, 4, 5}, packets: 5, expected: 5},
		{name: "gap", seqs: []uint16{1, 2, 5, 6}, packets: 4, expected: 6, lost: 2},
		{name: "wrap", seqs: []uint16{65533, 65534, 65535, 0, 1}, packets: 5, expected: 5},
		{name: "gap across wrap", seqs: []uint16{65534, 1, 2}, packets: 3, expected: 5, lost: 2},
		{name: "reorder", seqs: []uint16{1, 2, 4, 3, 5}, packets: 5, expected: 5, reord: 1},
		{name: "reorder across wrap", seqs: []uint16{65534, 0, 65535, 1}, packets: 4, expected: 4, reord: 1},
		{name: "duplicate", seqs: []uint16{1, 2, 2, 3}, packets: 4, expected: 3, dups: 1},
		{name: "duplicate of a late packet", seqs: []uint16{1, 3, 2, 2, 4}, packets: 5, expected: 4, dups: 1, reord: 1},
		{name: "duplicate of the first", seqs: []uint16{7, 7}, packets: 2, expected: 1, dups: 1},
		{name: "late, from before the first", seqs: []uint16{10, 8, 11}, packets: 3, expected: 4, lost: 1, reord: 1},
		{name: "late, from before the first, across wrap", seqs: []uint16{2, 65534, 3}, packets: 3, expected: 6, lost: 3, reord: 1},
		{name: "loss then late fill", seqs: []uint16{1, 4, 2, 5}, packets: 4, expected: 5, lost: 1, reord: 1},
		{name: "jump within dropout is loss", seqs: []uint16{1, 2000}, packets: 2, expected: 2000, lost: 1998},
		{name: "sender restart", seqs: []uint16{100, 101, 40000, 40001, 40002}, packets: 5, expected: 5, resets: 1},
		{name: "restart across wrap", seqs: []uint16{100, 101, 65535, 0, 1}, packets: 5, expected: 5, resets: 1},
		{name: "stray", seqs: []uint16{100, 101, 50000, 102}, packets: 4, expected: 3, ignored: 1},
		{name: "too late to count", seqs: []uint16{1000, 1001, 800, 1002}, packets: 4, expected: 3, ignored: 1},
		{name: "long wrap run", seqs: seqRun(65000, 2000, 1), packets: 2000, expected: 2000},
		{name: "every other lost across wrap", seqs: seqRun(65500, 100, 2), packets: 100, expected: 199, lost: 99},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStats(90000)
			for i, seq := range c.seqs {
				s.Update(pkt(seq, uint32(i)*3000), t0.Add(time.Duration(i)*33*time.Millisecond))
			}
			got := s.Snapshot()
			want := Snapshot{Packets: c.packets, Expected: c.expected, Lost: c.lost, Duplicated: c.dups,
				Reordered: c.reord, Resets: c.resets, Ignored: c.ignored}
			if got.Packets != want.Packets || got.Expected != want.Expected || got.Lost != want.Lost ||
				got.Duplicated != want.Duplicated || got.Reordered != want.Reordered ||
				got.Resets != want.Resets || got.Ignored != want.Ignored {
				t.Fatalf("got packets=%d expected=%d lost=%d dups=%d reordered=%d resets=%d ignored=%d\nwant packets=%d expected=%d lost=%d dups=%d reordered=%d resets=%d ignored=%d",
					got.Packets, got.Expected, got.Lost, got.Duplicated, got.Reordered, got.Resets, got.Ignored,
					want.Packets, want.Expected, want.Lost, want.Duplicated, want.Reordered, want.Resets, want.Ignored)
			}
			if got.Bytes != c.packets*112 {
				t.Fatalf("bytes %d, want %d", got.Bytes, c.packets*112)
			}
			if got.SSRC != 0x1234 || got.PayloadType != 96 || got.ClockRate != 90000 {
				t.Fatalf("identity %+v", got)
			}
		})
	}
}

func seqRun(start uint16, n int, step uint16) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = start + uint16(i)*step
	}
	return out
}

// TestJitterHandComputed checks RFC 3550 6.4.1 against values computed by
// hand: 8 kHz audio, 20 ms (160 units) per packet.
func TestJitterHandComputed(t *testing.T) {
	s := NewStats(8000)
	steps := []struct {
		arrive time.Duration
		ts     uint32
		want   float64 // J after this packet, in timestamp units
	}{
		{0, 1000, 0},
		{20 * time.Millisecond, 1160, 0},                                   // D = 160-160 = 0
		{45 * time.Millisecond, 1320, 2.5},                                 // D = 200-160 = 40: J = 40/16
		{60 * time.Millisecond, 1480, 2.5 + 37.5/16},                       // D = 120-160 = -40: J += (40-2.5)/16
		{80 * time.Millisecond, 1640, 4.84375 * 15 / 16},                   // D = 0: J -= J/16
		{100 * time.Millisecond, 1640, 4.541015625 + (160-4.541015625)/16}, // same ts, 20 ms later: D = 160
	}
	for i, st := range steps {
		s.Update(pkt(uint16(i), st.ts), t0.Add(st.arrive))
		got := s.Snapshot()
		if math.Abs(got.Jitter-st.want) > 1e-9 {
			t.Fatalf("packet %d: jitter %v, want %v", i, got.Jitter, st.want)
		}
		if math.Abs(got.JitterSeconds-st.want/8000) > 1e-12 {
			t.Fatalf("packet %d: jitter seconds %v, want %v", i, got.JitterSeconds, st.want/8000)
		}
	}
}

func TestJitterTimestampWrapAndSteadyFlow(t *testing.T) {
	s := NewStats(90000)
	ts := uint32(math.MaxUint32 - 3000*10)
	for i := 0; i < 100; i++ {
		s.Update(pkt(uint16(i), ts), t0.Add(time.Duration(i)*time.Second/30))
		ts += 3000
	}
	if j := s.Snapshot().JitterSeconds; j > 1e-6 {
		t.Fatalf("steady 30 fps flow across the timestamp wrap: jitter %v s", j)
	}
}

func TestNoClockRateNoJitter(t *testing.T) {
	s := NewStats(0)
	s.Update(pkt(1, 0), t0)
	s.Update(pkt(2, 0), t0.Add(time.Second))
	if got := s.Snapshot(); got.Jitter != 0 || got.JitterSeconds != 0 || got.Packets != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestOtherSSRCIgnored(t *testing.T) {
	s := NewStats(90000)
	s.Update(pkt(1, 0), t0)
	other := pkt(2, 0)
	other.SSRC = 99
	s.Update(other, t0)
	s.Update(pkt(2, 0), t0)
	s.Update(nil, t0)
	got := s.Snapshot()
	if got.Packets != 2 || got.Ignored != 1 || got.Lost != 0 || got.Expected != 2 {
		t.Fatalf("%+v", got)
	}
	if !got.First.Equal(t0) || !got.Last.Equal(t0) {
		t.Fatalf("times %v %v", got.First, got.Last)
	}
}

// FuzzStats feeds arbitrary packet sequences and checks the counters'
// invariants. Each 8-byte record is: sequence number (2), timestamp (4),
// arrival step in ms (1), flags (1: bit 0 = other SSRC).
func FuzzStats(f *testing.F) {
	rec := func(seq uint16, ts uint32, step, flags byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, seq)
		b = binary.BigEndian.AppendUint32(b, ts)
		return append(b, step, flags)
	}
	var seed []byte
	for _, seq := range []uint16{65534, 65535, 0, 2, 1, 1, 40000, 40001} {
		seed = append(seed, rec(seq, uint32(seq)*3000, 33, 0)...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewStats(90000)
		at := t0
		n := 0
		for ; len(data) >= 8 && n < 4096; data = data[8:] {
			p := pkt(binary.BigEndian.Uint16(data), binary.BigEndian.Uint32(data[2:]))
			if data[7]&1 != 0 {
				p.SSRC++
			}
			at = at.Add(time.Duration(data[6]) * time.Millisecond)
			s.Update(p, at)
			n++
			got := s.Snapshot()
			if got.Lost > got.Expected {
				t.Fatalf("lost %d > expected %d", got.Lost, got.Expected)
			}
			if got.Duplicated+got.Reordered > got.Packets {
				t.Fatalf("dups %d + reordered %d > packets %d", got.Duplicated, got.Reordered, got.Packets)
			}
			unique := got.Expected - got.Lost
			if unique+got.Duplicated > got.Packets || got.Packets == 0 && got.Expected != 0 {
				t.Fatalf("unique %d dups %d packets %d", unique, got.Duplicated, got.Packets)
			}
			if math.IsNaN(got.Jitter) || math.IsInf(got.Jitter, 0) || got.Jitter < 0 || got.FractionLost < 0 || got.FractionLost > 1 {
				t.Fatalf("jitter %v fraction %v", got.Jitter, got.FractionLost)
			}
		}
	})
}

// BenchmarkUpdate measures the per-packet cost of the statistics on the
// media path (one mutex, a few integer and float operations).
func BenchmarkUpdate(b *testing.B) {
	s := NewStats(90000)
	p := pkt(0, 0)
	at := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.SequenceNumber = uint16(i)
		p.Timestamp = uint32(i) * 3000
		at = at.Add(33 * time.Millisecond)
		s.Update(p, at)
	}
}
