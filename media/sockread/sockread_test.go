package sockread

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
)

// Reader reads as net.Conn.Read does: what is there, waiting for it; the
// deadline; EOF; a closed connection.
func TestReaderLikeConnRead(t *testing.T) {
	server, client := testutil.TCPPair(t)
	r := New(server)
	if _, ok := r.(*Reader); !ok {
		t.Fatalf("New(TCP connection) = %T, want *Reader", r)
	}
	go func() {
		time.Sleep(20 * time.Millisecond) // the read waits for it
		client.Write([]byte("hello"))
	}()
	buf := make([]byte, 64)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}

	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a net.Error timeout", err)
	}
	server.SetReadDeadline(time.Time{})

	client.Write([]byte("bye"))
	client.Close()
	if n, err := io.ReadAll(r); err != nil || string(n) != "bye" {
		t.Fatalf("ReadAll to EOF = %q, %v", n, err)
	}

	server.Close()
	if _, err := r.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
}

func TestNewKeepsOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := New(a); r != io.Reader(a) {
		t.Fatalf("New(net.Pipe) = %T, want the connection itself", r)
	}
}
