package cluster

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// link is one impairable TCP link: a userspace forwarder in the root
// namespace, listening on the bridge, to a node's address. The kernel here
// has no netem qdisc, so delay, loss and partitions are made here:
//   - delay: every chunk is delivered delay after it was read, in order;
//   - loss: TCP hides a lost segment behind a retransmission, so a "lost"
//     chunk is delivered after an extra lossStall (a retransmission timeout);
//   - cut (partition): nothing passes either way and no error is
//     signalled, as with a real partition: connections stall until their
//     peers time out; new connections are accepted and stall too. Heal
//     closes the stalled connections (their peers would have reset them)
//     and forwards new ones again.
type link struct {
	name   string
	ln     net.Listener
	target string

	delay atomic.Int64  // nanoseconds
	loss  atomic.Uint32 // per 10,000 chunks
	cut   atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// lossStall is the extra delay of a "lost" chunk: Linux's minimum TCP
// retransmission timeout.
const lossStall = 200 * time.Millisecond

// newLink listens on listenIP:0 and forwards to target until the test ends.
func newLink(t testing.TB, name, listenIP, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	l := &link{name: name, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// Addr is where nodes dial to go through the link.
func (l *link) Addr() string { return l.ln.Addr().String() }

// Impair sets the delay and the loss rate (0..1) of both directions.
func (l *link) Impair(delay time.Duration, loss float64) {
	l.delay.Store(int64(delay))
	l.loss.Store(uint32(loss * 10000))
}

// Cut partitions the link.
func (l *link) Cut() { l.cut.Store(true) }

// Heal ends a partition: stalled connections are closed, new ones pass.
func (l *link) Heal() {
	l.cut.Store(false)
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
}

func (l *link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(c) {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(c)
		}()
	}
}

func (l *link) serve(in net.Conn) {
	defer l.untrack(in)
	if l.cut.Load() {
		// A partition: hold the connection, pass nothing.
		io.Copy(io.Discard, in)
		return
	}
	out, err := net.DialTimeout("tcp", l.target, 3*time.Second)
	if err != nil {
		return // the node is down: the client sees a reset
	}
	if !l.track(out) {
		return
	}
	defer l.untrack(out)
	done := make(chan struct{}, 2)
	go func() { l.pipe(out, in); done <- struct{}{} }()
	go func() { l.pipe(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	<-done
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst through the impairments: a reader queues chunks
// with their delivery time, a writer delivers them in order.
func (l *link) pipe(dst, src net.Conn) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 && !l.cut.Load() {
				due := time.Now().Add(time.Duration(l.delay.Load()))
				if p := l.loss.Load(); p > 0 && rand.Uint32N(10000) < p {
					due = due.Add(lossStall)
				}
				q <- chunk{b[:n], due}
			}
			if err != nil {
				return
			}
		}
	}()
	var last time.Time
	for c := range q {
		if c.due.Before(last) {
			c.due = last // in order: a stalled chunk holds back the ones after it
		}
		last = c.due
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if l.cut.Load() {
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			for range q { // drain so the reader ends
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return
	}
	l.wg.Wait()
}

// TestLink checks the forwarder itself on loopback: bytes pass in order,
// a delay delays, a cut passes nothing, a heal passes again.
func TestLink(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	l := newLink(t, "echo", "127.0.0.1", echo.Addr().String())
	roundTrip := func() (time.Duration, error) {
		c, err := net.DialTimeout("tcp", l.Addr(), time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		t0 := time.Now()
		msg := []byte("0123456789")
		if _, err := c.Write(msg); err != nil {
			return 0, err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return 0, err
		}
		if string(got) != string(msg) {
			return 0, errors.New("corrupted: " + string(got))
		}
		return time.Since(t0), nil
	}
	if _, err := roundTrip(); err != nil {
		t.Fatalf("clean link: %v", err)
	}
	l.Impair(100*time.Millisecond, 0)
	if d, err := roundTrip(); err != nil || d < 200*time.Millisecond {
		t.Fatalf("100 ms each way: round trip %v %v, want >= 200 ms", d, err)
	}
	l.Impair(0, 0)
	l.Cut()
	if _, err := roundTrip(); err == nil {
		t.Fatal("a cut link passed bytes")
	}
	l.Heal()
	if _, err := roundTrip(); err != nil {
		t.Fatalf("healed link: %v", err)
	}
}
