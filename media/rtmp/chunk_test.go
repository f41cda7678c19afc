package rtmp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func payloadOf(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func TestChunkRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 129, 4095, 4096, 4097, 65536, 200000}
	for _, chunkSize := range []uint32{128, 4096, 65536} {
		for _, ts := range []uint32{0, 40, 0xfffffe, 0xffffff, 0x1000000, 0xffffffff} {
			t.Run(fmt.Sprintf("chunk%d/ts%x", chunkSize, ts), func(t *testing.T) {
				var wire []byte
				if chunkSize != 128 {
					wire = appendUint32Control(wire, TypeSetChunkSize, chunkSize)
				}
				var want []Message
				for i, n := range sizes {
					m := Message{Type: TypeVideo, StreamID: 1, Timestamp: ts + uint32(i), Payload: payloadOf(n, byte(i))}
					if i%2 == 1 {
						m.Type = TypeAudio
					}
					want = append(want, m)
					wire = AppendChunks(wire, m.CSID(), m.StreamID, m.Type, m.Timestamp, m.Payload, chunkSize)
				}
				cr := NewChunkReader(bytes.NewReader(wire), 1<<20)
				if chunkSize != 128 {
					m, _, err := cr.ReadMessage()
					if err != nil || m.Type != TypeSetChunkSize {
						t.Fatalf("SetChunkSize: %v %+v", err, m)
					}
					if err := cr.SetChunkSize(chunkSize); err != nil {
						t.Fatal(err)
					}
				}
				for i, w := range want {
					got, _, err := cr.ReadMessage()
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if got.Type != w.Type || got.StreamID != w.StreamID || got.Timestamp != w.Timestamp || !bytes.Equal(got.Payload, w.Payload) {
						t.Fatalf("message %d: got type %d sid %d ts %#x len %d, want type %d ts %#x len %d",
							i, got.Type, got.StreamID, got.Timestamp, len(got.Payload), w.Type, w.Timestamp, len(w.Payload))
					}
				}
				if _, _, err := cr.ReadMessage(); err != io.EOF {
					t.Fatalf("after last message: %v, want EOF", err)
				}
				if cr.BytesRead() != uint64(len(wire)) {
					t.Fatalf("BytesRead %d, want %d", cr.BytesRead(), len(wire))
				}
			})
		}
	}
}

func TestChunkedSize(t *testing.T) {
	for _, csid := range []uint32{2, 63, 64, 319, 320, 65599} {
		for _, ts := range []uint32{0, 0xffffff} {
			for _, n := range []int{0, 1, 128, 129, 1000} {
				got := len(AppendChunks(nil, csid, 1, TypeVideo, ts, make([]byte, n), 128))
				if want := ChunkedSize(csid, ts, n, 128); got != want {
					t.Errorf("csid %d ts %x n %d: AppendChunks %d bytes, ChunkedSize %d", csid, ts, n, got, want)
				}
			}
		}
	}
}

// TestExtendedTimestampCrossing streams messages whose timestamps cross
// 0xFFFFFF and wrap past 2^32, using a simulated clock, in chunk formats a
// compressing encoder would use: type 0, type 1/2 deltas, and type-3 new
// messages, each with type-3 continuation chunks that repeat the extended
// timestamp. go-rtmp v0.0.7 misparses the continuation chunks.
func TestExtendedTimestampCrossing(t *testing.T) {
	const chunkSize = 128
	var wire []byte
	var want []Message
	ts := uint32(0xffffff - 200)
	step := uint32(40)
	for i := 0; i < 40; i++ {
		p := payloadOf(300+i, byte(i)) // 3 chunks each
		want = append(want, Message{Type: TypeVideo, StreamID: 1, Timestamp: ts, Payload: p})
		wire = AppendChunks(wire, CSIDVideo, 1, TypeVideo, ts, p, chunkSize)
		ts += step
	}
	// Near the 2^32 wrap with compressed headers: type 0 then type 2 deltas
	// with an extended delta, then type-3 new messages reusing it.
	ts = 0xffffffff - 100
	big := uint32(0x1000000) // delta needing the extended field
	p := payloadOf(300, 9)
	wire = AppendChunks(wire, CSIDAudio, 1, TypeAudio, ts, p, chunkSize)
	want = append(want, Message{Type: TypeAudio, StreamID: 1, Timestamp: ts, Payload: p})
	for i := 0; i < 3; i++ {
		ts += big // wraps past 2^32 on the first step
		p := payloadOf(300, byte(20+i))
		var hdr []byte
		if i == 0 {
			hdr = appendBasicHeader(nil, 2, CSIDAudio)
			hdr = append(hdr, 0xff, 0xff, 0xff)
		} else {
			hdr = appendBasicHeader(nil, 3, CSIDAudio)
		}
		hdr = append(hdr, byte(big>>24), byte(big>>16), byte(big>>8), byte(big))
		wire = append(wire, hdr...)
		for off := 0; off < len(p); off += chunkSize {
			if off > 0 {
				wire = appendBasicHeader(wire, 3, CSIDAudio)
				wire = append(wire, byte(big>>24), byte(big>>16), byte(big>>8), byte(big))
			}
			wire = append(wire, p[off:min(off+chunkSize, len(p))]...)
		}
		want = append(want, Message{Type: TypeAudio, StreamID: 1, Timestamp: ts, Payload: p})
	}
	cr := NewChunkReader(bytes.NewReader(wire), 0)
	var u TimestampUnwrapper
	var last int64 = -1
	for i, w := range want {
		got, _, err := cr.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.Timestamp != w.Timestamp || !bytes.Equal(got.Payload, w.Payload) || got.Type != w.Type {
			t.Fatalf("message %d: ts %#x len %d, want ts %#x len %d", i, got.Timestamp, len(got.Payload), w.Timestamp, len(w.Payload))
		}
		if i >= 40 { // the unwrapped clock stays monotonic across the wrap
			v := u.Unwrap(got.Timestamp)
			if v <= last {
				t.Fatalf("message %d: unwrapped %d after %d", i, v, last)
			}
			last = v
		}
	}
}

// Some encoders omit the extended timestamp on continuation chunks; the
// reader accepts both forms.
func TestExtendedTimestampOmittedOnContinuation(t *testing.T) {
	ts := uint32(0x2000000)
	p := payloadOf(300, 3)
	full := AppendChunks(nil, CSIDVideo, 1, TypeVideo, ts, p, 128)
	// Rebuild without the repeated field: header(1+11+4) + 128 + (1) + 128 + (1) + 44.
	var wire []byte
	wire = append(wire, full[:16+128]...)
	wire = append(wire, full[16+128])
	wire = append(wire, p[128:256]...)
	wire = append(wire, full[16+128])
	wire = append(wire, p[256:]...)
	m, _, err := NewChunkReader(bytes.NewReader(wire), 0).ReadMessage()
	if err != nil || m.Timestamp != ts || !bytes.Equal(m.Payload, p) {
		t.Fatalf("got ts %#x len %d err %v", m.Timestamp, len(m.Payload), err)
	}
}

func TestChunkReaderLimits(t *testing.T) {
	cr := NewChunkReader(bytes.NewReader(nil), 0)
	for _, n := range []uint32{0, MaxChunkSize + 1} {
		if err := cr.SetChunkSize(n); !errors.Is(err, ErrBadChunkSize) {
			t.Errorf("SetChunkSize(%d) = %v, want ErrBadChunkSize", n, err)
		}
	}
	if err := cr.SetChunkSize(MaxChunkSize); err != nil {
		t.Errorf("SetChunkSize(max) = %v", err)
	}
	wire := AppendChunks(nil, CSIDVideo, 1, TypeVideo, 0, make([]byte, 2000), 4096)
	_, _, err := NewChunkReader(bytes.NewReader(wire), 1000).ReadMessage()
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized message: %v, want ErrMessageTooLarge", err)
	}
	// A header announcing 8 MiB followed by nothing allocates little and fails cleanly.
	hdr := AppendChunks(nil, CSIDVideo, 1, TypeVideo, 0, make([]byte, 100), 128)[:12]
	hdr[4], hdr[5], hdr[6] = 0x7f, 0xff, 0xff
	if _, _, err := NewChunkReader(bytes.NewReader(hdr), 0).ReadMessage(); err == nil {
		t.Fatal("truncated message: no error")
	}
	// Type 1 first on a chunk stream is a protocol error.
	if _, _, err := NewChunkReader(bytes.NewReader([]byte{0x46, 0, 0, 0, 0, 0, 1, 9}), 0).ReadMessage(); err == nil {
		t.Fatal("type-1 first: no error")
	}
}

func TestAbortDropsPartialMessage(t *testing.T) {
	p := payloadOf(300, 1)
	full := AppendChunks(nil, CSIDVideo, 1, TypeVideo, 5, p, 128)
	var wire []byte
	wire = append(wire, full[:12+128]...) // first chunk of the video message
	wire = appendUint32Control(wire, TypeAbort, CSIDVideo)
	wire = AppendChunks(wire, CSIDVideo, 1, TypeVideo, 6, []byte{1, 2, 3}, 128)
	cr := NewChunkReader(bytes.NewReader(wire), 0)
	m, _, err := cr.ReadMessage()
	if err != nil || m.Type != TypeAbort {
		t.Fatalf("want abort, got %+v %v", m, err)
	}
	cr.Abort(CSIDVideo)
	m, _, err = cr.ReadMessage()
	if err != nil || m.Timestamp != 6 || !bytes.Equal(m.Payload, []byte{1, 2, 3}) {
		t.Fatalf("after abort: %+v %v", m, err)
	}
}

func TestSplitAggregate(t *testing.T) {
	var agg []byte
	sub := func(typ uint8, ts uint32, p []byte) {
		n := len(p)
		agg = append(agg, typ, byte(n>>16), byte(n>>8), byte(n), byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
		agg = append(agg, p...)
		agg = append(agg, 0, 0, 0, byte(11+n))
	}
	sub(TypeVideo, 1000, []byte{0x17, 1})
	sub(TypeAudio, 1020, []byte{0xaf, 1, 5})
	msgs, err := splitAggregate(Message{Type: TypeAggregate, StreamID: 1, Timestamp: 50, Payload: agg})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%v %d", err, len(msgs))
	}
	if msgs[0].Timestamp != 50 || msgs[1].Timestamp != 70 || msgs[1].Type != TypeAudio || !bytes.Equal(msgs[1].Payload, []byte{0xaf, 1, 5}) {
		t.Fatalf("bad split: %+v", msgs)
	}
	if _, err := splitAggregate(Message{Payload: agg[:len(agg)-2]}); err == nil {
		t.Fatal("truncated aggregate: no error")
	}
}

func TestTimestampUnwrapper(t *testing.T) {
	var u TimestampUnwrapper
	in := []uint32{0xfffffff0, 0xfffffffa, 0x5, 0x3, 0x20, 0x80000000, 0xfffffff0, 0x10}
	want := []int64{0xfffffff0, 0xfffffffa, 0x100000005, 0x100000003, 0x100000020, 0x180000000, 0x1fffffff0, 0x200000010}
	for i, ts := range in {
		if got := u.Unwrap(ts); got != want[i] {
			t.Fatalf("step %d: Unwrap(%#x) = %#x, want %#x", i, ts, got, want[i])
		}
	}
}

// A playing connection's read buffer shrinks without losing what the old
// one already held (a client sends SetBufferLength right behind play).
func TestRebufferKeepsBufferedBytes(t *testing.T) {
	var in bytes.Buffer
	for i, body := range []string{"first", "second", "third"} {
		in.Write(AppendChunks(nil, 3, 0, TypeCommandAMF0, uint32(i), []byte(body), 128))
	}
	br := bufio.NewReaderSize(&in, 4096)
	cr := NewChunkReader(br, 0)
	if m, _, err := cr.ReadMessage(); err != nil || string(m.Payload) != "first" {
		t.Fatalf("first message: %q, %v", m.Payload, err)
	}
	if br.Buffered() == 0 {
		t.Fatal("nothing left buffered: the test checks nothing")
	}
	small, ok := cr.rebuffer(&in, 512)
	if !ok || small.Size() != 512 {
		t.Fatalf("rebuffer: ok %v, size %d", ok, small.Size())
	}
	for _, want := range []string{"second", "third"} {
		if m, _, err := cr.ReadMessage(); err != nil || string(m.Payload) != want {
			t.Fatalf("after rebuffer: %q, %v; want %q", m.Payload, err, want)
		}
	}
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// With WholeFirst (an authorised publisher) a message of several chunks
// takes one allocation, its payload; without, the buffer grows with the
// chunks (4 KB, 8 KB, then the whole).
func TestWholeFirstAllocatesOnce(t *testing.T) {
	payload := payloadOf(10000, 3)
	// Type-0 headers throughout: the loop restarts the stream each time.
	msg := AppendChunks(nil, CSIDVideo, 1, TypeVideo, 40, payload, 4096)
	allocs := func(l ChunkLimits) float64 {
		cr := NewChunkReader(bufio.NewReaderSize(&loopReader{b: msg}, 64<<10), DefaultMaxMessageSize)
		if err := cr.SetChunkSize(4096); err != nil {
			t.Fatal(err)
		}
		cr.SetLimits(l)
		return testing.AllocsPerRun(100, func() {
			m, _, err := cr.ReadMessage()
			if err != nil || len(m.Payload) != len(payload) || m.Payload[9999] != payload[9999] {
				t.Fatalf("ReadMessage: %d bytes, %v", len(m.Payload), err)
			}
		})
	}
	t.Logf("allocations per message: publish %.1f, pre-auth %.1f", allocs(DefaultPublishLimits), allocs(DefaultPreAuthLimits))
	if got := allocs(DefaultPublishLimits); got != 1 {
		t.Errorf("publish limits: %.1f allocations per message, want 1", got)
	}
	if got := allocs(DefaultPreAuthLimits); got < 2 {
		t.Errorf("pre-auth limits: %.1f allocations per message, want the buffer grown with the chunks", got)
	}
}
