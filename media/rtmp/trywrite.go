package rtmp

// TryWriteChunks is WriteChunks for a caller that must not block, such as a
// publisher handing a frame to many players in turn (see
// sockwrite.Writer.Try): one non-blocking writev when the connection is
// idle, that is nothing else is being written and nothing is left over from
// an earlier TryWriteChunks.
//
// taken reports whether bufs were handled: written whole, or in part with
// the rest kept (by reference: bufs must stay unmodified, as the shared,
// immutable bytes of AppendChunks are) to go out ahead of the next write.
// flush reports that such a rest is waiting: the caller must have a blocking
// WriteChunks (with no arguments, or with the next bytes) follow soon. When
// taken is false nothing was written, and the caller writes bufs itself with
// WriteChunks: the connection is busy, closed, broken, or not a socket this
// can write to without blocking (TLS).
func (c *ServerConn) TryWriteChunks(bufs ...[]byte) (taken, flush bool) {
	if !c.wmu.TryLock() {
		return false, false
	}
	defer c.wmu.Unlock()
	if c.shut.Load() {
		return false, false
	}
	select {
	case <-c.done:
		return false, false
	default:
	}
	n, taken, flush := c.sw.Try(bufs...)
	c.written.Add(uint64(n))
	return taken, flush
}
