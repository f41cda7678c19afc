//go:build linux

package readpoll

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
)

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// calls counts a watch's calls on a channel.
func calls() (func(*Watch), chan struct{}) {
	ch := make(chan struct{}, 16)
	return func(*Watch) { ch <- struct{}{} }, ch
}

func wantCall(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no call after %s", what)
	}
}

func wantNoCall(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("called after %s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchCallsOncePerArming(t *testing.T) {
	p := newPoller(t)
	server, client := testutil.TCPPair(t)
	fn, ch := calls()
	w, err := p.Watch(server, fn)
	if err != nil {
		t.Fatal(err)
	}
	wantNoCall(t, ch, "nothing was sent")

	client.Write([]byte("ack"))
	wantCall(t, ch, "the peer wrote")
	client.Write([]byte("more"))
	wantNoCall(t, ch, "a second write before Rearm")

	// Bytes already waiting when the watch is armed again are reported at once.
	if err := w.Rearm(); err != nil {
		t.Fatal(err)
	}
	wantCall(t, ch, "Rearm with unread bytes")
	buf := make([]byte, 16)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "ackmore" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := w.Rearm(); err != nil {
		t.Fatal(err)
	}
	wantNoCall(t, ch, "Rearm with everything read")

	// A hang-up is reported, and the owner's read finds it.
	client.Close()
	wantCall(t, ch, "the peer closed")
	if _, err := server.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after hang-up: %v, want EOF", err)
	}
}

func TestStopEndsCalls(t *testing.T) {
	p := newPoller(t)
	server, client := testutil.TCPPair(t)
	fn, ch := calls()
	w, err := p.Watch(server, fn)
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	client.Write([]byte("x"))
	wantNoCall(t, ch, "Stop")
	// A stopped watch's connection may be closed, and its descriptor
	// reused by the next one, which is watched on its own.
	server.Close()
	server2, client2 := testutil.TCPPair(t)
	fn2, ch2 := calls()
	if _, err := p.Watch(server2, fn2); err != nil {
		t.Fatal(err)
	}
	client2.Write([]byte("y"))
	wantCall(t, ch2, "a write to the next connection")
	wantNoCall(t, ch, "a write to the next connection")
}

// A connection closed without Stop leaves the kernel's set; the poller
// goes on serving the others.
func TestClosedWithoutStop(t *testing.T) {
	p := newPoller(t)
	server, _ := testutil.TCPPair(t)
	fn, _ := calls()
	w, err := p.Watch(server, fn)
	if err != nil {
		t.Fatal(err)
	}
	server.Close()
	if err := w.Rearm(); err == nil {
		t.Fatal("Rearm of a closed connection succeeded")
	}
	w.Stop()
	other, client := testutil.TCPPair(t)
	fn2, ch2 := calls()
	if _, err := p.Watch(other, fn2); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("z"))
	wantCall(t, ch2, "a write to another connection")
}

func TestManyConnections(t *testing.T) {
	p := newPoller(t)
	const n = 300 // more than one epoll_wait's worth of events
	clients := make([]net.Conn, n)
	ch := make(chan int, n)
	for i := range n {
		server, client := testutil.TCPPair(t)
		clients[i] = client
		if _, err := p.Watch(server, func(*Watch) { ch <- i }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		c.Write([]byte("a"))
	}
	seen := make(map[int]bool)
	deadline := time.After(10 * time.Second)
	for len(seen) < n {
		select {
		case i := <-ch:
			if seen[i] {
				t.Fatalf("connection %d reported twice without Rearm", i)
			}
			seen[i] = true
		case <-deadline:
			t.Fatalf("%d of %d connections reported", len(seen), n)
		}
	}
}

func TestCloseEndsThePoller(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	server, client := testutil.TCPPair(t)
	fn, ch := calls()
	if _, err := p.Watch(server, fn); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("x"))
	wantNoCall(t, ch, "Close")
	if _, err := p.Watch(server, fn); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestUnsupportedConn(t *testing.T) {
	p := newPoller(t)
	if _, err := p.Watch(noFD{}, func(*Watch) {}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Watch without a descriptor: %v, want ErrUnsupported", err)
	}
}

// noFD is a syscall.Conn without a descriptor, as a TLS-wrapped or
// in-memory connection would answer.
type noFD struct{}

func (noFD) SyscallConn() (syscall.RawConn, error) { return nil, errors.New("no descriptor") }
