// Package sockread reads a socket with raw system calls. A relay's
// publisher connection is read dozens of times a second, in bursts with
// the process idle in between; each read through the net package enters
// the runtime's system-call state, which wakes its monitor thread (sysmon)
// from its sleep, and the monitor then polls every 20 µs for a millisecond
// or more before backing off. At 10 players that polling was a third of
// the relay's CPU. A read on a non-blocking socket never blocks, so it needs
// none of that: Reader makes it a raw system call and parks in the
// runtime's poller, as the net package does, when there is nothing to read.
package sockread

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Reader reads one socket. Deadlines set on the connection apply.
type Reader struct {
	nc  net.Conn
	raw syscall.RawConn
}

// New returns a Reader for nc, or nc itself when it is not a socket that
// can be read this way (TLS, pipes).
func New(nc net.Conn) io.Reader {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &Reader{nc: nc, raw: raw}
}

// Read reads what the socket holds, up to len(p) bytes, waiting for at
// least one. Errors are those of net.Conn.Read: io.EOF at the end, a
// *net.OpError otherwise (net.ErrClosed, os.ErrDeadlineExceeded, ...).
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := r.raw.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // park until the socket is readable
			}
			n, errno = int(m), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, r.opError(err)
	case errno != 0:
		return 0, r.opError(os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *Reader) opError(err error) error {
	return &net.OpError{Op: "read", Net: r.nc.LocalAddr().Network(), Source: r.nc.LocalAddr(), Addr: r.nc.RemoteAddr(), Err: err}
}
