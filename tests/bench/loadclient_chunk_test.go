package bench

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// chunkBytes encodes one message as chunks of size cs the way servers do:
// a format-0 header (with the extended timestamp if ts ≥ 0xFFFFFF), then
// format-3 continuation headers repeating the extended timestamp.
func chunkBytes(csid byte, format byte, ts, typeID, sid uint32, payload []byte, cs int) []byte {
	var b []byte
	basic := func(f byte) {
		if csid >= 64 {
			b = append(b, f<<6, csid-64)
		} else {
			b = append(b, f<<6|csid)
		}
	}
	ext := ts >= 0xFFFFFF
	t3 := ts
	if ext {
		t3 = 0xFFFFFF
	}
	basic(format)
	b = append(b, byte(t3>>16), byte(t3>>8), byte(t3))
	if format <= 1 {
		n := len(payload)
		b = append(b, byte(n>>16), byte(n>>8), byte(n), byte(typeID))
	}
	if format == 0 {
		b = binary.LittleEndian.AppendUint32(b, sid)
	}
	if ext {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	for i := 0; i < len(payload); i += cs {
		if i > 0 {
			basic(3)
			if ext {
				b = binary.BigEndian.AppendUint32(b, ts)
			}
		}
		b = append(b, payload[i:min(len(payload), i+cs)]...)
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestChunkReader feeds a hand-built chunk stream over loopback: window
// size, chunk size change, ping, extended timestamps with continuation
// chunks, a delta header, a two-byte chunk stream id and an aggregate.
func TestChunkReader(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var in []byte
	in = append(in, chunkBytes(2, 0, 0, msgWindowAckSize, 0, u32(100), 128)...)
	in = append(in, chunkBytes(2, 0, 0, msgSetChunkSize, 0, u32(64), 128)...)
	in = append(in, chunkBytes(2, 0, 0, msgUserControl, 0, []byte{0, 6, 1, 2, 3, 4}, 64)...)
	video := make([]byte, 150)
	in = append(in, chunkBytes(6, 0, 0x01000000, msgVideo, 1, video, 64)...)
	in = append(in, chunkBytes(6, 1, 40, msgVideo, 1, make([]byte, 10), 64)...)
	in = append(in, chunkBytes(70, 0, 5, msgAudio, 1, make([]byte, 5), 64)...)
	agg := []byte{msgAudio, 0, 0, 3, 0, 0, 100, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 14,
		msgVideo, 0, 0, 4, 0, 0, 140, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 15}
	in = append(in, chunkBytes(7, 0, 1000, msgAggregate, 1, agg, 64)...)

	replies := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			replies <- nil
			return
		}
		defer c.Close()
		c.Write(in)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _ := io.ReadAll(c)
		replies <- got
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := newPlayer(conn, 5*time.Second)
	var stamps []uint32
	for len(stamps) < 4 {
		m, err := p.readMessage()
		if err != nil {
			t.Fatalf("after %v: %v", stamps, err)
		}
		if m.isMedia {
			p.onMedia(m)
			stamps = append(stamps, m.timestamp)
		}
	}
	conn.Close()
	want := []uint32{0x01000000, 0x01000028, 5, 1000}
	for i := range want {
		if stamps[i] != want[i] {
			t.Errorf("timestamps %x, want %x", stamps, want)
			break
		}
	}
	if p.window != 100 || p.inChunk != 64 {
		t.Errorf("window %d chunk size %d, want 100 and 64", p.window, p.inChunk)
	}
	if p.videoMsgs != 3 || p.audioMsgs != 2 || p.mediaBytes != 150+10+5+3+4 {
		t.Errorf("video %d audio %d bytes %d", p.videoMsgs, p.audioMsgs, p.mediaBytes)
	}
	if got := p.flvBytes.Load(); got != p.mediaBytes+5*flvTagOverhead {
		t.Errorf("flv bytes %d, want %d", got, p.mediaBytes+5*flvTagOverhead)
	}
	got := <-replies
	// Expect a PingResponse (type 4, event 7, same timestamp) and at least
	// one Acknowledgement (type 3) whose sequence number is the byte count.
	var pong, acks int
	for len(got) >= 12 {
		typeID, n := got[7], int(got[6])
		body := got[12 : 12+n]
		switch typeID {
		case msgUserControl:
			if string(body) == string([]byte{0, 7, 1, 2, 3, 4}) {
				pong++
			}
		case msgAck:
			if seq := binary.BigEndian.Uint32(body); seq < 100 || int(seq) > len(in) {
				t.Errorf("ack sequence %d outside 100..%d", seq, len(in))
			}
			acks++
		}
		got = got[12+n:]
	}
	if pong != 1 || acks == 0 {
		t.Errorf("replies: %d pongs, %d acks; want 1 and at least 1", pong, acks)
	}
}

func TestChunkReaderLimits(t *testing.T) {
	for name, in := range map[string][]byte{
		"format 3 first":   {0xC3},
		"huge chunk size":  chunkBytes(2, 0, 0, msgSetChunkSize, 0, u32(0x7fffffff), 128),
		"huge command":     {0x03, 0, 0, 0, 0xff, 0xff, 0xff, msgCommandAMF0, 0, 0, 0, 0},
		"truncated header": {0x03, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() { b.Write(in); b.Close() }()
			p := newPlayer(a, time.Second)
			for range 10 {
				if _, err := p.readMessage(); err != nil {
					return
				}
			}
			t.Error("no error")
		})
	}
}
