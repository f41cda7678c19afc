//go:build linux

package readpoll

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// watchEvents: readable or hung up, reported once per arming. Level
// triggered, so arming a connection that already has bytes waiting reports
// it at once. (Errors and full hang-ups are always reported.)
const watchEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Poller watches many connections with one epoll instance.
type Poller struct {
	f  *os.File        // the epoll instance, waited on by the Go runtime
	rc syscall.RawConn // f's: its descriptor stays open while in use

	mu      sync.Mutex
	watches map[uint64]*Watch // by the id each watch's events carry
	next    uint64
	closed  bool

	done chan struct{} // closed when the loop has returned
}

// Watch is one connection's registration with a Poller.
type Watch struct {
	p  *Poller
	id uint64
	rc syscall.RawConn
	fn func(*Watch)
}

// New starts a Poller.
func New() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("readpoll: epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller:
	// the loop then parks like any goroutine reading a socket.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("readpoll: %w", err)
	}
	f := os.NewFile(uintptr(fd), "readpoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("readpoll: %w", err)
	}
	p := &Poller{f: f, rc: rc, watches: make(map[uint64]*Watch), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// Watch registers c: fn is called with the watch once c has bytes to read,
// has been hung up or has failed, and again only after Rearm; the first
// call may come before Watch returns. fn runs on the Poller's goroutine and
// must not block: it should start the goroutine that reads. It may still be
// called once just after Stop.
func (p *Poller) Watch(c conn, fn func(*Watch)) (*Watch, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, ErrUnsupported
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.next++
	w := &Watch{p: p, id: p.next, rc: rc, fn: fn}
	p.watches[w.id] = w
	p.mu.Unlock()
	if err := w.ctl(unix.EPOLL_CTL_ADD); err != nil {
		p.forget(w)
		return nil, err
	}
	return w, nil
}

// Rearm asks for the next call of fn, after the owner has read what made the
// last one. Bytes that are already waiting call fn at once.
func (w *Watch) Rearm() error { return w.ctl(unix.EPOLL_CTL_MOD) }

// Stop ends the watch. Call it before closing the connection; a connection
// closed without it is dropped by the kernel all the same.
func (w *Watch) Stop() {
	w.p.forget(w)
	_ = w.ctl(unix.EPOLL_CTL_DEL)
}

func (p *Poller) forget(w *Watch) {
	p.mu.Lock()
	delete(p.watches, w.id)
	p.mu.Unlock()
}

// ctl applies op to the watch's descriptor. Both descriptors are held open
// for the call, so neither can be closed and reused in between.
func (w *Watch) ctl(op int) error {
	ev := unix.EpollEvent{Events: watchEvents, Fd: int32(uint32(w.id)), Pad: int32(uint32(w.id >> 32))}
	var cerr error
	err := w.p.rc.Control(func(efd uintptr) {
		if err := w.rc.Control(func(fd uintptr) {
			cerr = unix.EpollCtl(int(efd), op, int(fd), &ev)
		}); err != nil {
			cerr = err
		}
	})
	if err != nil {
		return ErrClosed
	}
	if cerr != nil {
		return fmt.Errorf("readpoll: epoll_ctl: %w", cerr)
	}
	return nil
}

// loop waits for ready connections and calls their functions.
func (p *Poller) loop() {
	defer close(p.done)
	evs := make([]unix.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(fd), evs, 0)
				if werr != unix.EINTR {
					break
				}
			}
			// Nothing ready: park until the instance becomes readable.
			return n != 0 || werr != nil
		})
		if err != nil || werr != nil {
			return // closed
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			w := p.watches[id]
			p.mu.Unlock()
			if w != nil {
				w.fn(w)
			}
		}
	}
}

// Close stops the Poller: no function is called after it returns. Watches
// left registered are dropped.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	clear(p.watches)
	p.mu.Unlock()
	err := p.f.Close()
	<-p.done
	return err
}
