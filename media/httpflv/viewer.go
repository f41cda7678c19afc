package httpflv

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/sockwrite"
	"github.com/portier/portier/media/stream"
)

// viewer is one HTTP-FLV play. Served on its own connection (taken over
// from the HTTP server), it has no goroutine while it keeps up: the
// publisher writes each batch to its socket (direct), and what cannot be
// written that way (the socket is full, the publisher's time for direct
// writes is spent, the stream ended) has the reader start a goroutine that
// writes until the reader has nothing left, then exits
// (stream.ReaderParams.Wake, run). A viewer that leaves is seen at the
// next write, as before. Served through the ResponseWriter (HTTP/2), it is
// read by ServeHTTP's goroutine (next).
type viewer struct {
	h      *Handler
	log    *slog.Logger
	rd     *stream.Reader // set once Hub.Read returns
	start  time.Time
	signal chan struct{} // wakes next, while not on its own connection

	// On its own connection; set by begin before on.
	conn    net.Conn
	sw      *sockwrite.Writer
	chunked bool
	on      atomic.Bool

	// run's: the framer of its batches and the bytes it wrote.
	fr      framer
	written int64

	// direct's own, as direct may run while run's are in use: its size
	// line may be kept by sw in a rest.
	dfr      framer
	dwritten atomic.Int64
}

// wake is the reader's ReaderParams.Wake: it starts run on the viewer's own
// connection, or wakes next. Until begin's run or next first finds the
// reader empty, the reader does not call it.
func (v *viewer) wake() {
	if v.on.Load() {
		go v.run()
		return
	}
	select {
	case v.signal <- struct{}{}:
	default:
	}
}

// next returns the reader's next batch for writeResponse.
func (v *viewer) next(ctx context.Context) ([]*stream.Unit, error) {
	for {
		if units, ok, err := v.rd.TryNext(); ok || err != nil {
			return units, err
		}
		select {
		case <-v.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// begin serves the viewer on conn, taken over from the HTTP server: the
// response header and the FLV header, then what the reader has queued,
// on the calling goroutine; later batches go out through direct and run.
func (v *viewer) begin(conn net.Conn, bw *bufio.Writer, hdr http.Header, chunked bool) {
	v.conn, v.chunked = conn, chunked
	v.fr.chunked, v.dfr.chunked = chunked, chunked
	// The server's deadlines may still be set: bound each write instead.
	_ = conn.SetDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(v.h.p.WriteTimeout))
	if chunked {
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")
	} else {
		_, _ = bw.WriteString("HTTP/1.0 200 OK\r\n")
	}
	hdr.Set("Connection", "close")
	_ = hdr.Write(bw)
	_, _ = bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		v.end("viewer left", err)
		return
	}
	v.sw = sockwrite.New(conn)
	if err := v.writeBody([][]byte{flv.AppendHeader(nil, true, true)}); err != nil {
		v.end("viewer left", err)
		return
	}
	v.on.Store(true)
	v.run()
}

// run writes the reader's batches until there are none, or the play ends.
func (v *viewer) run() {
	for {
		units, ok, err := v.rd.TryNext()
		if err != nil {
			v.ended(err)
			return
		}
		if !ok {
			return
		}
		body := sockwrite.GetBufs()
		*body = appendTags(*body, units)
		_ = v.conn.SetWriteDeadline(time.Now().Add(v.h.p.WriteTimeout))
		err = v.writeBody(*body)
		sockwrite.PutBufs(body)
		if err != nil {
			v.end("write to viewer failed", err)
			return
		}
	}
}

// ended ends a viewer whose reader has ended with err.
func (v *viewer) ended(err error) {
	switch {
	case errors.Is(err, stream.ErrEnded):
		if v.chunked {
			_ = v.conn.SetWriteDeadline(time.Now().Add(v.h.p.WriteTimeout))
			_ = v.write([][]byte{lastChunk}, len(lastChunk))
		}
		v.end("stream ended", nil)
	case errors.Is(err, stream.ErrDropped):
		v.end("viewer too slow, dropped", err)
	default: // Handler.Close closed the reader: a viewer leaving shows in a write
		v.end("server closing", nil)
	}
}

// writeBody writes one frame of body, waiting for room in the socket.
func (v *viewer) writeBody(body [][]byte) error {
	bufs := sockwrite.GetBufs()
	defer sockwrite.PutBufs(bufs)
	var n int
	*bufs, n = v.fr.frame(*bufs, body)
	return v.write(*bufs, n)
}

// write writes bufs, n bytes, after what a direct write left.
func (v *viewer) write(bufs [][]byte, n int) error {
	if rest := v.sw.Rest(); len(rest) > 0 {
		for _, b := range rest {
			n += len(b)
		}
		bufs = append(rest[:len(rest):len(rest)], bufs...)
		defer v.sw.Sent()
	}
	m, err := v.sw.Write(bufs)
	v.written += m
	if err == nil && m != int64(n) {
		err = io.ErrShortWrite
	}
	return err
}

// end closes the play and the connection and reports it, once: the reader
// has ended or ends here, and wakes run no more.
func (v *viewer) end(reason string, err error) {
	v.rd.Close()
	_ = v.conn.Close()
	logClosed(v.log, v.start, v.written+v.dwritten.Load(), reason, err)
	v.h.release(v)
}

// stop ends a viewer taken over, for Handler.Close: run reports "server
// closing".
func (v *viewer) stop() { v.rd.Close() }

// direct is the reader's ReaderParams.Direct: the publisher's goroutine
// writes the viewer's batch, framed as run frames it, with one non-blocking
// writev instead of waking run. A full socket, or a viewer not (yet) on its
// own connection, leaves the batch to run. Calls are serialised by the
// reader and never overlap run's writes: the reader calls Direct only while
// run holds no batch, so sw needs no lock of its own.
func (v *viewer) direct(units []*stream.Unit) (taken, flush bool) {
	if !v.on.Load() {
		return false, false
	}
	body, bufs := sockwrite.GetBufs(), sockwrite.GetBufs()
	*body = appendTags(*body, units)
	*bufs, _ = v.dfr.frame(*bufs, *body)
	m, taken, flush := v.sw.Try(*bufs...)
	v.dwritten.Add(int64(m))
	sockwrite.PutBufs(body)
	sockwrite.PutBufs(bufs)
	return taken, flush
}
