// Package sockwrite writes to a socket without blocking the caller: the
// non-blocking half of a connection whose blocking writes are done by its
// own goroutine. A publisher handing each frame to many players in turn uses
// it to write to every player whose socket has room, and leaves the rest to
// the players' goroutines (see stream.ReaderParams.Direct). Those blocking
// writes go through it too (Write), so that every write to a player is a
// raw system call (see sockread for why).
package sockwrite

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// iovMax is the most iovecs one writev takes on Linux (IOV_MAX).
const iovMax = 1024

// Scratch arrays (iovecs here, the pieces of a write for callers: GetBufs)
// live in pools for the length of one write rather than in each
// connection: a player's largest write is its first (the codec headers and
// the GOP it joins with, a hundred pieces and more), and arrays kept per
// connection stayed that size for life, about 5 KB per player.
var (
	iovPool  = sync.Pool{New: func() any { return new([]syscall.Iovec) }}
	bufsPool = sync.Pool{New: func() any { return new([][]byte) }}
)

// GetBufs returns an empty slice for the pieces of one write, to be given
// back with PutBufs once the write is done.
func GetBufs() *[][]byte { return bufsPool.Get().(*[][]byte) }

// PutBufs gives back a slice from GetBufs. It clears the slice first, so
// the pool holds no references to the pieces.
func PutBufs(b *[][]byte) {
	clear(*b)
	*b = (*b)[:0]
	if cap(*b) <= iovMax {
		bufsPool.Put(b)
	}
}

// appendIovec appends the iovec of b to iov.
func appendIovec(iov []syscall.Iovec, b []byte) []syscall.Iovec {
	iov = append(iov, syscall.Iovec{Base: unsafe.SliceData(b)})
	iov[len(iov)-1].SetLen(len(b))
	return iov
}

func getIov() *[]syscall.Iovec { return iovPool.Get().(*[]syscall.Iovec) }

func putIov(iov *[]syscall.Iovec) {
	clear(*iov) // hold no pointers into the callers' bytes
	*iov = (*iov)[:0]
	iovPool.Put(iov)
}

// Writer is one socket's non-blocking writes and what they left unwritten.
// It is not safe for concurrent use: its owner serialises Try with its own
// blocking writes, and sends Rest ahead of the next of them.
type Writer struct {
	nc   net.Conn
	raw  syscall.RawConn // nil: not a socket that can be written without blocking
	rest [][]byte
}

// New returns nc's Writer. For anything but a plain socket (TLS, pipes) the
// Writer never takes bytes and the owner writes everything itself.
func New(nc net.Conn) *Writer {
	w := &Writer{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.raw = rc
		}
	}
	return w
}

// Try writes bufs with one non-blocking writev when nothing is left over
// from an earlier Try. It returns the bytes written; taken reports whether
// bufs were handled: written whole, or in part with the rest kept (by
// reference: bufs must not be modified afterwards, as shared, immutable
// encodings are not) for the owner to send first with its next blocking
// write. rest reports that such a rest is waiting. When taken is false
// nothing was written: the socket is full or broken, a rest is pending, or
// the Writer cannot write without blocking; the owner writes bufs itself
// (and finds any error).
func (w *Writer) Try(bufs ...[]byte) (n int, taken, rest bool) {
	if w.raw == nil || len(w.rest) > 0 {
		return 0, false, false
	}
	piov := getIov()
	defer putIov(piov)
	iov := *piov
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(iov) == iovMax {
			*piov = iov
			return 0, false, false
		}
		iov = appendIovec(iov, b)
		total += len(b)
	}
	*piov = iov
	if total == 0 {
		return 0, true, false
	}
	// A full socket (EAGAIN), a broken one or a closed descriptor all
	// leave n at 0: the owner's blocking write waits or finds the error.
	//
	// A raw system call: the write never blocks, but on loopback it runs
	// the receiver's side of TCP too, often past the 20 µs after which the
	// runtime's monitor hands a P in a system call to another thread. At
	// dozens of writes a second per player those hand-offs, and the thread
	// wake-ups and sleeps they cause, cost more than the writes.
	_ = w.raw.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
			if e == syscall.EINTR {
				continue
			}
			if e == 0 {
				n = int(r)
			}
			return true // never wait: a full socket is the blocking writer's business
		}
	})
	if n == 0 {
		return 0, false, false
	}
	if n == total {
		return n, true, false
	}
	left := n
	for _, b := range bufs {
		if left >= len(b) {
			left -= len(b)
			continue
		}
		w.rest = append(w.rest, b[left:])
		left = 0
	}
	return n, true, true
}

// Rest is what Try left unwritten, to go out before anything else; the
// owner calls Sent once it has written it.
func (w *Writer) Rest() [][]byte { return w.rest }

// Sent forgets the rest after the owner has written it.
func (w *Writer) Sent() {
	clear(w.rest)
	w.rest = w.rest[:0]
}

// Write writes all of bufs, waiting for room in the socket as
// net.Conn.Write does (the connection's write deadline applies), with raw
// system calls (see Try). It neither modifies nor keeps bufs. Rest is not
// sent: the owner puts it in front of bufs. For anything but a plain
// socket it is net.Buffers.WriteTo on the connection. Errors are those of
// net.Conn.Write.
func (w *Writer) Write(bufs [][]byte) (int64, error) {
	if w.raw == nil {
		// WriteTo consumes the slice's elements: give it a copy.
		nb := append(net.Buffers(nil), bufs...)
		return nb.WriteTo(w.nc)
	}
	var total int64
	var errno syscall.Errno
	i, off := 0, 0 // the next byte to write: bufs[i][off]
	piov := getIov()
	err := w.raw.Write(func(fd uintptr) bool {
		for {
			for i < len(bufs) && off == len(bufs[i]) {
				i, off = i+1, 0
			}
			if i == len(bufs) {
				return true
			}
			iov := (*piov)[:0]
			for j := i; j < len(bufs) && len(iov) < iovMax; j++ {
				b := bufs[j]
				if j == i {
					b = b[off:]
				}
				if len(b) == 0 {
					continue
				}
				iov = appendIovec(iov, b)
			}
			*piov = iov
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
			switch e {
			case 0:
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // park until the socket has room
			default:
				errno = e
				return true
			}
			total += int64(r)
			for n := int(r); n > 0; {
				if left := len(bufs[i]) - off; n >= left {
					n -= left
					i, off = i+1, 0
				} else {
					off += n
					n = 0
				}
			}
		}
	})
	putIov(piov)
	if err == nil && errno != 0 {
		err = os.NewSyscallError("writev", errno)
	}
	if err != nil {
		return total, &net.OpError{Op: "write", Net: w.nc.LocalAddr().Network(), Source: w.nc.LocalAddr(), Addr: w.nc.RemoteAddr(), Err: err}
	}
	return total, nil
}
