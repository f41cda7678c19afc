//go:build !linux || mips || mipsle || mips64 || mips64le

package rtsp

import (
	"errors"
	"net"
	"syscall"
)

// reusePort is not used outside Linux: without steering there is nothing
// to share the port with.
var reusePort func(network, address string, c syscall.RawConn) error

// listenSteered needs Linux (not MIPS: see udpsteer_linux.go): elsewhere UDP publishes are measured after
// gortsplib's reorder buffer.
func listenSteered(_, _ *net.UDPAddr) (*net.UDPConn, error) {
	return nil, errors.New("per-publisher UDP sockets need Linux")
}

// setReadBuffer asks for a receive buffer of size bytes; the size granted
// is not known here.
func setReadBuffer(c *net.UDPConn, size int) (int, error) {
	return size, c.SetReadBuffer(size)
}
