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
