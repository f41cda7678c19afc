// Package readpoll tells when a quiet connection has something to read,
// without a goroutine blocked in Read per connection. A relay's players
// send a few bytes every several seconds (an acknowledgement, a ping
// response) and a command when they leave; a goroutine per player waiting
// for them costs its stack, which is most of a player's memory. One Poller
// watches them all and calls back when one of them is readable or hung up;
// the owner then reads what is there on a goroutine of its own and arms the
// watch again.
//
// It uses an epoll instance that the Go runtime itself waits on, so a
// Poller has one parked goroutine and no thread of its own. On systems
// without epoll New returns ErrUnsupported and owners keep their reading
// goroutines.
package readpoll

import (
	"errors"
	"syscall"
)

// ErrUnsupported is returned by New where there is no epoll, and by Watch
// for a connection that is not a socket with a file descriptor (TLS over a
// pipe, net.Pipe in tests).
var ErrUnsupported = errors.New("readpoll: not supported for this connection or system")

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("readpoll: poller closed")

// conn is what Watch needs of a connection: its file descriptor.
type conn = syscall.Conn
