//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package rtsp

import (
	"context"
	"net"
	"syscall"
)

// soReusePort is SO_REUSEPORT, which package syscall does not define; its
// value is 15 on every Linux architecture Go supports but MIPS (excluded by
// the build constraint).
const soReusePort = 0xf

// reusePort lets the server's RTP socket share its port with the connected
// per-publisher sockets of listenSteered.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// listenSteered opens a UDP socket on the server's RTP address (local)
// connected to one publisher's RTP address (remote). Linux delivers a
// datagram to the connected socket that matches its source exactly rather
// than to the shared listener, so that publisher's packets come to us
// before gortsplib's reorder buffer, and we read them the moment they
// arrive.
func listenSteered(local, remote *net.UDPAddr) (*net.UDPConn, error) {
	d := net.Dialer{LocalAddr: local, Control: reusePort}
	c, err := d.DialContext(context.Background(), "udp", remote.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// soRcvBufForce is SO_RCVBUFFORCE (Linux, not MIPS): a receive buffer
// above net.core.rmem_max, allowed with CAP_NET_ADMIN.
const soRcvBufForce = 0x21

// setReadBuffer asks for a receive buffer of size bytes: beyond the OS cap
// when the process may (CAP_NET_ADMIN), else up to net.core.rmem_max. It
// returns the size the kernel granted.
func setReadBuffer(c *net.UDPConn, size int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soRcvBufForce, size) != nil {
			// Capped silently at net.core.rmem_max.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		}
		if serr == nil {
			got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			got /= 2 // the kernel reports twice the size, bookkeeping included
		}
	})
	if err != nil {
		return 0, err
	}
	return got, serr
}
