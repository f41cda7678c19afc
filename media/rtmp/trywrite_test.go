package rtmp

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
)

// A player that stops reading fills its socket: TryWriteChunks writes what
// fits, keeps the rest and refuses more until a blocking write has sent the
// rest, and the player receives every byte exactly once, in order.
func TestTryWriteChunksKeepsTheRestInOrder(t *testing.T) {
	s, cl := testutil.TCPPair(t)
	_ = s.SetWriteBuffer(4096)
	_ = cl.SetReadBuffer(4096)
	c := NewServerConn(s, ServerConfig{WriteTimeout: 5 * time.Second})
	var want bytes.Buffer
	var flushed bool
	var pending [][]byte // not taken: the caller writes them
	for i := 0; i < 100 && !flushed && pending == nil; i++ {
		a := bytes.Repeat([]byte{byte(i)}, 60000)
		b := bytes.Repeat([]byte{byte(i + 100)}, 40000)
		taken, flush := c.TryWriteChunks(a, nil, b)
		switch {
		case taken:
			want.Write(a)
			want.Write(b)
			flushed = flush
		case i == 0:
			t.Fatal("an empty socket took nothing")
		default: // full to the byte: nothing written
			pending = [][]byte{a, b}
		}
	}
	if !flushed && pending == nil {
		t.Fatal("a socket nobody reads never filled up")
	}
	t.Logf("socket full after %d bytes; rest kept: %v", want.Len(), flushed)
	if taken, _ := c.TryWriteChunks([]byte("more")); taken {
		t.Fatal("TryWriteChunks wrote past a kept rest")
	}
	got := make(chan []byte, 1)
	go func() {
		_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(cl)
		got <- b
	}()
	last := append(pending, []byte("the end"))
	if err := c.WriteChunks(last...); err != nil {
		t.Fatal(err)
	}
	for _, b := range last {
		want.Write(b)
	}
	if taken, flush := c.TryWriteChunks([]byte("!")); !taken || flush {
		t.Fatalf("after the blocking write: taken %v, flush %v; want taken, no rest", taken, flush)
	}
	want.WriteString("!")
	_ = s.CloseWrite()
	b := <-got
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("player got %d bytes, want %d (first difference at %d)", len(b), want.Len(), firstDiff(b, want.Bytes()))
	}
	if w := c.BytesWritten(); w != uint64(want.Len()) {
		t.Fatalf("BytesWritten %d, want %d", w, want.Len())
	}
}

// A closed connection or one whose socket cannot be written without
// blocking (anything but a plain socket) leaves the bytes to the caller.
func TestTryWriteChunksDefers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if taken, _ := NewServerConn(a, ServerConfig{}).TryWriteChunks([]byte("x")); taken {
		t.Fatal("a pipe has no socket: want the bytes left to WriteChunks")
	}
	s, _ := testutil.TCPPair(t)
	c := NewServerConn(s, ServerConfig{})
	_ = c.Close()
	if taken, _ := c.TryWriteChunks([]byte("x")); taken {
		t.Fatal("a closed connection took bytes")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
