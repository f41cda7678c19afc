package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// chunkStreamAttack is what one hostile connection sends before any
// publish: chunk size 1, then n chunk streams each announcing an 8 MB
// video message and sending its first byte (about 15 bytes per stream).
func chunkStreamAttack(n int) []byte {
	wire := appendUint32Control(nil, TypeSetChunkSize, 1)
	for i := range n {
		csid := uint32(3 + i)
		wire = appendBasicHeader(wire, 0, csid)
		size := DefaultMaxMessageSize
		wire = append(wire, 0, 0, 0, byte(size>>16), byte(size>>8), byte(size), TypeVideo, 1, 0, 0, 0)
		wire = append(wire, 0x17) // the message's first byte
	}
	return wire
}

// readAll reads messages until an error, applying SetChunkSize as a
// connection does, and returns the other messages and the error.
func readAll(cr *ChunkReader) ([]Message, error) {
	var msgs []Message
	for {
		m, _, err := cr.ReadMessage()
		if err != nil {
			return msgs, err
		}
		if m.Type == TypeSetChunkSize {
			if err := cr.SetChunkSize(binary.BigEndian.Uint32(m.Payload)); err != nil {
				return msgs, err
			}
			continue
		}
		msgs = append(msgs, m)
	}
}

// Memory follows the bytes received: 1,000 partial messages of one byte
// each used to reserve 64 KiB apiece (64 MB for 15 KB sent).
func TestChunkReaderMemoryFollowsBytes(t *testing.T) {
	wire := chunkStreamAttack(1000)
	cr := NewChunkReader(bytes.NewReader(wire), 0)
	cr.SetLimits(ChunkLimits{}) // no caps: only the growth policy is under test
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := readAll(cr); err != io.EOF {
		t.Fatalf("read: %v, want EOF", err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes sent, %d bytes allocated", len(wire), alloc)
	if alloc > 1<<20 {
		t.Fatalf("%d bytes sent made the reader allocate %d bytes (want under 1 MiB)", len(wire), alloc)
	}
	if b, open := cr.Buffered(); open != 1000 || b > 2*1000 {
		t.Fatalf("buffered %d bytes in %d open messages, want ≤ 2000 in 1000", b, open)
	}
}

// The same, with a huge chunk size: a header and one byte never allocate
// the chunk's length up front.
func TestChunkReaderLargeChunkSizeAllocatesLazily(t *testing.T) {
	wire := appendUint32Control(nil, TypeSetChunkSize, MaxChunkSize)
	wire = appendBasicHeader(wire, 0, 6)
	size := DefaultMaxMessageSize
	wire = append(wire, 0, 0, 0, byte(size>>16), byte(size>>8), byte(size), TypeVideo, 1, 0, 0, 0, 0x17)
	cr := NewChunkReader(bytes.NewReader(wire), 0)
	m, _, err := cr.ReadMessage()
	if err != nil || m.Type != TypeSetChunkSize {
		t.Fatalf("SetChunkSize: %v", err)
	}
	if err := cr.SetChunkSize(MaxChunkSize); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cr.ReadMessage(); err == nil {
		t.Fatal("truncated message read without error")
	}
	if b, _ := cr.Buffered(); b > maxFirstPiece {
		t.Fatalf("one byte received, %d bytes buffered", b)
	}
}

func TestChunkReaderCaps(t *testing.T) {
	big := payloadOf(6<<20, 1) // a keyframe at a high bitrate
	keyframe := appendUint32Control(nil, TypeSetChunkSize, 4096)
	keyframe = AppendChunks(keyframe, CSIDVideo, 1, TypeVideo, 0, big, 4096)
	// Audio and video interleaved, as encoders send them: two open at once.
	interleaved := appendUint32Control(nil, TypeSetChunkSize, 128)
	v, a := payloadOf(1000, 2), payloadOf(300, 3)
	vw := AppendChunks(nil, CSIDVideo, 1, TypeVideo, 0, v, 128)
	aw := AppendChunks(nil, CSIDAudio, 1, TypeAudio, 0, a, 128)
	interleaved = append(interleaved, vw[:12+128]...) // video header + first chunk
	interleaved = append(interleaved, aw...)
	interleaved = append(interleaved, vw[12+128:]...)

	for _, tc := range []struct {
		name   string
		wire   []byte
		limits ChunkLimits
		msgs   int   // complete messages expected (after SetChunkSize)
		err    error // expected end (io.EOF: read everything)
	}{
		{"attack before auth", chunkStreamAttack(1000), DefaultPreAuthLimits, 0, ErrChunkLimit},
		{"attack after auth", chunkStreamAttack(1000), DefaultPublishLimits, 0, ErrChunkLimit},
		{"keyframe before auth", keyframe, DefaultPreAuthLimits, 0, ErrChunkLimit},
		{"keyframe after auth", keyframe, DefaultPublishLimits, 1, io.EOF},
		{"interleaved before auth", interleaved, DefaultPreAuthLimits, 2, io.EOF},
		{"too large message", AppendChunks(nil, CSIDVideo, 1, TypeVideo, 0, payloadOf(DefaultMaxMessageSize+1, 0), 128), DefaultPublishLimits, 0, ErrMessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := NewChunkReader(bytes.NewReader(tc.wire), 0)
			cr.SetLimits(tc.limits)
			msgs, err := readAll(cr)
			got := len(msgs)
			for _, m := range msgs {
				if m.Type == TypeVideo && len(m.Payload) == len(big) && !bytes.Equal(m.Payload, big) {
					t.Fatal("keyframe corrupted")
				}
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("ended with %v, want %v", err, tc.err)
			}
			if got != tc.msgs {
				t.Fatalf("%d messages, want %d", got, tc.msgs)
			}
			if b, _ := cr.Buffered(); tc.limits.MaxBufferedBytes > 0 && b > tc.limits.MaxBufferedBytes {
				t.Fatalf("buffered %d bytes past the limit %d", b, tc.limits.MaxBufferedBytes)
			}
		})
	}
}

// A ServerConn applies the pre-authorisation limits until AcceptPublish:
// the attack ends Accept with ErrChunkLimit, while an authorised publisher
// may then send a 6 MB keyframe.
func TestServerConnChunkLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		acceptErr error
		msg       Message
		readErr   error
	}
	results := make(chan result, 2)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := NewServerConn(nc, ServerConfig{})
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := c.Accept(ctx); err != nil {
					results <- result{acceptErr: err}
					return
				}
				if err := c.AcceptPublish(); err != nil {
					results <- result{acceptErr: err}
					return
				}
				m, err := c.ReadMessage()
				results <- result{msg: m, readErr: err}
			}()
		}
	}()

	// The attacker: handshake, then the chunk streams, no connect.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := clientHandshake(nc); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = nc.Write(chunkStreamAttack(1000)) }()
	r := <-results
	if !errors.Is(r.acceptErr, ErrChunkLimit) {
		t.Fatalf("attack: Accept returned %v, want ErrChunkLimit", r.acceptErr)
	}

	// A real publisher after authorisation.
	ctx := testCtx(t)
	cc, err := Dial(ctx, "rtmp://"+ln.Addr().String()+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Publish(ctx, "cam"); err != nil {
		t.Fatal(err)
	}
	big := payloadOf(6<<20, 5)
	if err := cc.WriteMessage(Message{Type: TypeVideo, Payload: big}); err != nil {
		t.Fatal(err)
	}
	r = <-results
	if r.acceptErr != nil || r.readErr != nil || !bytes.Equal(r.msg.Payload, big) {
		t.Fatalf("keyframe after publish: accept %v, read %v, %d bytes", r.acceptErr, r.readErr, len(r.msg.Payload))
	}
}
