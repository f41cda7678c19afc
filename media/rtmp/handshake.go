package rtmp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// The handshake is the "simple" one: version 3, 1536-byte C1/S1 with a zero
// version field and random bytes, C2/S2 echoing the peer's C1/S1. Clients
// that use the digest ("complex") handshake, such as ffmpeg, OBS and
// rtmpdump, accept it: a zero version field tells them the server does not
// sign its packets. Nothing a peer sends in C1/C2 is validated beyond its
// length, which is what makes it tolerant of both kinds of client.

const handshakeSize = 1536

// handshakeBufs keeps a server handshake's 4.6 KB of buffers between
// connections: a thousand players joining at once otherwise leave 4.6 MB to
// the collector, which shows in the relay's peak memory.
var handshakeBufs = sync.Pool{New: func() any { return new([2 + 3*handshakeSize]byte) }}

// serverHandshake performs the server side of the handshake on rw.
func serverHandshake(rw io.ReadWriter) error {
	bufs := handshakeBufs.Get().(*[2 + 3*handshakeSize]byte)
	defer handshakeBufs.Put(bufs)
	c0c1 := bufs[:1+handshakeSize]
	if _, err := io.ReadFull(rw, c0c1); err != nil {
		return fmt.Errorf("read C0/C1: %w", err)
	}
	if c0c1[0] != 3 {
		return fmt.Errorf("unsupported RTMP version %d (only 3, plain RTMP, is supported)", c0c1[0])
	}
	out := bufs[1+handshakeSize:]
	out[0] = 3
	s1 := out[1 : 1+handshakeSize]
	clear(s1[:8])
	// time (4 bytes) = 0, version (4 bytes) = 0, then random.
	if _, err := rand.Read(s1[8:]); err != nil {
		return err
	}
	s2 := out[1+handshakeSize:]
	copy(s2, c0c1[1:])
	// S2's second field is the time C1 was read; 0 is accepted by every client.
	binary.BigEndian.PutUint32(s2[4:8], 0)
	if _, err := rw.Write(out); err != nil {
		return fmt.Errorf("write S0/S1/S2: %w", err)
	}
	c2 := c0c1[1:] // reuse the buffer: C2's content is not checked
	if _, err := io.ReadFull(rw, c2); err != nil {
		return fmt.Errorf("read C2: %w", err)
	}
	return nil
}

// clientHandshake performs the client side of the handshake on rw.
func clientHandshake(rw io.ReadWriter) error {
	c0c1 := make([]byte, 1+handshakeSize)
	c0c1[0] = 3
	if _, err := rand.Read(c0c1[9:]); err != nil {
		return err
	}
	if _, err := rw.Write(c0c1); err != nil {
		return fmt.Errorf("write C0/C1: %w", err)
	}
	s0s1 := make([]byte, 1+handshakeSize)
	if _, err := io.ReadFull(rw, s0s1); err != nil {
		return fmt.Errorf("read S0/S1: %w", err)
	}
	if s0s1[0] != 3 {
		return fmt.Errorf("server answered RTMP version %d (want 3)", s0s1[0])
	}
	c2 := s0s1[1:]
	if _, err := rw.Write(c2); err != nil {
		return fmt.Errorf("write C2: %w", err)
	}
	s2 := make([]byte, handshakeSize)
	if _, err := io.ReadFull(rw, s2); err != nil {
		return fmt.Errorf("read S2: %w", err)
	}
	return nil
}
