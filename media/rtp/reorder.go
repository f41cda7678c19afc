package rtp

import pionrtp "github.com/pion/rtp"

// DefaultReorderBuffer is the number of packets a Reorderer holds while it
// waits for a missing one (as gortsplib's).
const DefaultReorderBuffer = 64

// Reorderer puts the packets of one SSRC back in sequence order for a
// depacketiser. It holds packets behind a gap until the gap is filled or
// the buffer is full; then it gives up on the gap and releases what it
// holds. A packet that arrives after the Reorderer gave up on it (or a
// copy of one already released) is discarded: Process says so, so that a
// caller can count it as late (see Stats.LateDiscarded) rather than lost.
//
// A Reorderer is not safe for concurrent use: one goroutine reads a flow.
type Reorderer struct {
	size     int
	started  bool
	expected uint16 // next sequence number to release
	buf      []*pionrtp.Packet
	head     int // index of expected in buf
	behind   int // consecutive packets behind expected (a sender restart?)
}

// NewReorderer returns a Reorderer that holds up to size packets
// (DefaultReorderBuffer when size <= 0).
func NewReorderer(size int) *Reorderer {
	if size <= 0 {
		size = DefaultReorderBuffer
	}
	return &Reorderer{size: size, buf: make([]*pionrtp.Packet, size)}
}

// Process takes one arrived packet and returns the packets now ready, in
// order, how many sequence numbers it gave up on (lost before the
// depacketiser), and whether pkt itself was discarded (it came after its
// place was released, or it repeats a held packet).
func (r *Reorderer) Process(pkt *pionrtp.Packet) (out []*pionrtp.Packet, skipped int, discarded bool) {
	if !r.started {
		r.started = true
		r.expected = pkt.SequenceNumber + 1
		return []*pionrtp.Packet{pkt}, 0, false
	}
	rel := int(int16(pkt.SequenceNumber - r.expected))
	if rel < 0 {
		r.behind++
		if r.behind <= r.size {
			return nil, 0, true
		}
		// Far more packets behind than the buffer holds: the sender
		// restarted its sequence. Start over from this packet.
		r.reset()
		r.expected = pkt.SequenceNumber + 1
		return []*pionrtp.Packet{pkt}, 0, false
	}
	r.behind = 0
	if rel >= r.size {
		// The gap outlived the buffer: release everything held, then pkt.
		for i := range r.size {
			if p := r.buf[(r.head+i)%r.size]; p != nil {
				out = append(out, p)
			}
		}
		r.reset()
		out = append(out, pkt)
		skipped = int(uint16(pkt.SequenceNumber-r.expected)) + 1 - len(out)
		r.expected = pkt.SequenceNumber + 1
		return out, skipped, false
	}
	if rel > 0 {
		i := (r.head + rel) % r.size
		if r.buf[i] != nil {
			return nil, 0, true
		}
		r.buf[i] = pkt
		return nil, 0, false
	}
	out = append(out, pkt)
	r.advance()
	for r.buf[r.head] != nil {
		out = append(out, r.buf[r.head])
		r.buf[r.head] = nil
		r.advance()
	}
	return out, 0, false
}

func (r *Reorderer) advance() {
	r.expected++
	r.head = (r.head + 1) % r.size
}

func (r *Reorderer) reset() {
	clear(r.buf)
	r.head = 0
	r.behind = 0
}
