package rtmp

import (
	"syscall"
	"unsafe"
)

// iovMax is the most iovecs one writev takes on Linux (IOV_MAX).
const iovMax = 1024

// TryWriteChunks is WriteChunks for a caller that must not block, such as a
// publisher handing a frame to many players in turn. It writes bufs with
// one non-blocking writev when the connection is idle: nothing else is
// being written and nothing is left over from an earlier TryWriteChunks.
//
// taken reports whether bufs were handled: written whole, or written in
// part with the rest kept (by reference: bufs must stay unmodified, as the
// shared, immutable bytes of AppendChunks are) to go out ahead of the next
// write. flush reports that such a rest is waiting: the caller must have a
// blocking WriteChunks (with no arguments, or with the next bytes) follow
// soon. When taken is false nothing was written, and the caller writes bufs
// itself with WriteChunks: the connection is busy, closed, broken, or not a
// socket this can write to without blocking (TLS).
func (c *ServerConn) TryWriteChunks(bufs ...[]byte) (taken, flush bool) {
	if c.raw == nil || !c.wmu.TryLock() {
		return false, false
	}
	defer c.wmu.Unlock()
	if c.shut.Load() || len(c.backlog) > 0 {
		return false, false
	}
	select {
	case <-c.done:
		return false, false
	default:
	}
	iov := c.iov[:0]
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(iov) == iovMax {
			return false, false
		}
		iov = append(iov, syscall.Iovec{Base: unsafe.SliceData(b)})
		iov[len(iov)-1].SetLen(len(b))
		total += len(b)
	}
	c.iov = iov
	if total == 0 {
		return true, false
	}
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
			if e == syscall.EINTR {
				continue
			}
			if e != 0 && e != syscall.EAGAIN {
				werr = e
			} else if e == 0 {
				n = int(r)
			}
			return true // never wait: a busy socket is the blocking writer's business
		}
	})
	clear(c.iov[:len(iov)]) // hold no pointers into the callers' bytes
	if err != nil || werr != nil {
		if n == 0 {
			// Nothing went out: the blocking writer finds the error.
			return false, false
		}
	}
	c.written.Add(uint64(n))
	if n == total {
		return true, false
	}
	if n == 0 {
		return false, false
	}
	// Keep the rest, in order, for the next blocking write.
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		c.backlog = append(c.backlog, b[n:])
		n = 0
	}
	return true, true
}

// rawConn is the part of syscall.RawConn TryWriteChunks uses.
type rawConn interface {
	Write(f func(fd uintptr) (done bool)) error
}

// rawOf returns nc's raw connection when nc is a plain socket (TCP or Unix),
// nil otherwise (TLS, pipes in tests): TryWriteChunks then always defers to
// the blocking writer.
func rawOf(nc any) rawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
