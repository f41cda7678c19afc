package sockwrite

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
)

// Try writes until the socket is full, keeps the rest of a partial write
// in order, takes nothing more until the owner has sent it, and every byte
// arrives once.
func TestTryKeepsTheRest(t *testing.T) {
	s, cl := testutil.TCPPair(t)
	_ = s.SetWriteBuffer(4096)
	_ = cl.SetReadBuffer(4096)
	w := New(s)
	var want bytes.Buffer
	var pending [][]byte
	rest := false
	for i := 0; i < 100 && !rest && pending == nil; i++ {
		a := bytes.Repeat([]byte{byte(i)}, 50000)
		b := bytes.Repeat([]byte{byte(i + 7)}, 30000)
		n, taken, r := w.Try(a, nil, b)
		switch {
		case taken:
			if !r && n != len(a)+len(b) {
				t.Fatalf("taken whole but %d of %d bytes written", n, len(a)+len(b))
			}
			want.Write(a)
			want.Write(b)
			rest = r
		case i == 0:
			t.Fatal("an empty socket took nothing")
		default:
			if n != 0 {
				t.Fatalf("not taken, yet %d bytes written", n)
			}
			pending = [][]byte{a, b}
		}
	}
	if !rest && pending == nil {
		t.Fatal("a socket nobody reads never filled up")
	}
	if rest {
		if _, taken, _ := w.Try([]byte("x")); taken {
			t.Fatal("Try wrote past a kept rest")
		}
	}
	got := make(chan []byte, 1)
	go func() {
		_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(cl)
		got <- b
	}()
	// The owner's blocking write: the rest first, then its own bytes.
	out := append(append([][]byte{}, w.Rest()...), pending...)
	nb := net.Buffers(out)
	if _, err := nb.WriteTo(s); err != nil {
		t.Fatal(err)
	}
	w.Sent()
	for _, b := range pending {
		want.Write(b)
	}
	if len(w.Rest()) != 0 {
		t.Fatal("Sent kept a rest")
	}
	if _, taken, r := w.Try([]byte("end")); !taken || r {
		t.Fatalf("after the rest was sent: taken %v, rest %v", taken, r)
	}
	want.WriteString("end")
	_ = s.CloseWrite()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d", len(b), want.Len())
	}
}

// Anything but a plain socket is left to the owner; nothing to write is
// taken at once.
func TestTryDefers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, taken, _ := New(a).Try([]byte("x")); taken {
		t.Fatal("a pipe is not a socket: want the bytes left to the owner")
	}
	s, _ := testutil.TCPPair(t)
	if n, taken, rest := New(s).Try(nil, []byte{}); !taken || rest || n != 0 {
		t.Fatalf("empty write: n %d, taken %v, rest %v", n, taken, rest)
	}
}

// Write writes everything, in order, waiting for a slow reader (more
// iovecs than one writev takes, more bytes than the socket holds); its
// deadline and a peer that is gone end it with net.Conn.Write's errors.
func TestWriteWaitsAndWritesAll(t *testing.T) {
	s, cl := testutil.TCPPair(t)
	w := New(s)
	var bufs [][]byte
	var want bytes.Buffer
	for i := range 3000 { // 3 writevs' worth of iovecs, 12 MB
		b := bytes.Repeat([]byte{byte(i)}, 4000+i%7)
		if i%500 == 0 {
			b = nil // empty pieces are skipped
		}
		bufs = append(bufs, b)
		want.Write(b)
	}
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		time.Sleep(50 * time.Millisecond) // let the socket fill
		_, _ = io.CopyN(&b, cl, int64(want.Len()))
		got <- b.Bytes()
	}()
	n, err := w.Write(bufs)
	if err != nil || n != int64(want.Len()) {
		t.Fatalf("Write = %d, %v; want %d bytes", n, err, want.Len())
	}
	if !bytes.Equal(<-got, want.Bytes()) {
		t.Fatal("the bytes arrived changed or out of order")
	}

	// Nobody reads: the deadline ends the write.
	_ = s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := w.Write([][]byte{make([]byte, 64<<20)}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = s.SetWriteDeadline(time.Time{})
	cl.Close()
	var werr error
	for range 100 { // the reset arrives with the first writes after the close
		if _, werr = w.Write([][]byte{[]byte("x")}); werr != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(werr, &op) || op.Op != "write" {
		t.Fatalf("Write to a closed peer: %v, want a *net.OpError", werr)
	}
}
