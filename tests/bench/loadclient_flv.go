package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The HTTP-FLV player of the load client: an HTTP/1.1 GET of an .flv URL
// (as flv.js and ffplay ask for it, so a server answers with chunked
// transfer encoding), then the FLV header and tags. Each audio and video
// tag goes through player.onMedia as the RTMP message it carries, so bytes,
// FLV tag bytes, media time and lag are counted exactly as for an RTMP
// player. Tag bodies are discarded in the player's read buffer, never
// copied; SocketBytes includes the HTTP header and the chunk framing, as an
// RTMP player's includes the chunk headers.

// isFLVURL reports whether raw is an HTTP-FLV play URL (http://…).
func isFLVURL(raw string) bool { return strings.HasPrefix(raw, "http://") }

// flvTarget splits http://host[:port]/path.flv?query into the dial address
// and the request URI.
func flvTarget(raw string) (addr, uri string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parse play url: %w", err)
	}
	if u.Scheme != "http" {
		return "", "", fmt.Errorf("play url scheme %q, want http", u.Scheme)
	}
	if u.Host == "" || u.Path == "" || u.Path == "/" {
		return "", "", fmt.Errorf("play url %q: want http://host/path.flv", raw)
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return addr, u.RequestURI(), nil
}

// flvBody reads the body of an HTTP-FLV response straight from the
// player's bufio.Reader, undoing chunked transfer encoding on the way
// without a second buffer.
type flvBody struct {
	br      *bufio.Reader
	chunked bool
	left    int64 // data bytes left in the current chunk (chunked only)
	inChunk bool  // a chunk's data was started: its CRLF is still to come
	ended   bool  // the last chunk was read
}

// next makes at least one body byte readable and returns how many the
// current chunk still holds (an unbounded count without chunking).
func (b *flvBody) next() (int64, error) {
	if !b.chunked {
		return 1 << 62, nil
	}
	for b.left == 0 {
		if b.ended {
			return 0, io.EOF
		}
		if b.inChunk {
			if err := b.crlf(); err != nil {
				return 0, err
			}
			b.inChunk = false
		}
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("chunk size: %w", err)
		}
		n, ok := parseChunkSize(line)
		if !ok {
			return 0, fmt.Errorf("chunk size line %q", line)
		}
		if n == 0 {
			b.ended = true
			return 0, io.EOF
		}
		b.left, b.inChunk = n, true
	}
	return b.left, nil
}

func (b *flvBody) crlf() error {
	var c [2]byte
	if _, err := io.ReadFull(b.br, c[:]); err != nil {
		return fmt.Errorf("chunk end: %w", err)
	}
	if c != [2]byte{'\r', '\n'} {
		return fmt.Errorf("chunk data followed by %q, want CRLF", c[:])
	}
	return nil
}

// parseChunkSize reads the hex size of a chunk size line ("1a2f\r\n",
// perhaps with ";ext=…" or spaces before the CRLF) without allocating.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return n, digits > 0 && (c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n')
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return 0, false // no line end
}

// read fills p from the body.
func (b *flvBody) read(p []byte) error {
	for len(p) > 0 {
		avail, err := b.next()
		if err != nil {
			return err
		}
		n := int(min(avail, int64(len(p))))
		if _, err := io.ReadFull(b.br, p[:n]); err != nil {
			return err
		}
		b.consumed(n)
		p = p[n:]
	}
	return nil
}

// discard skips n body bytes.
func (b *flvBody) discard(n int) error {
	for n > 0 {
		avail, err := b.next()
		if err != nil {
			return err
		}
		k := int(min(avail, int64(n)))
		if _, err := b.br.Discard(k); err != nil {
			return err
		}
		b.consumed(k)
		n -= k
	}
	return nil
}

func (b *flvBody) consumed(n int) {
	if b.chunked {
		b.left -= int64(n)
	}
}

// dialFLV connects, sends the GET and reads the FLV header and tags up to
// the first media tag.
func dialFLV(ctx context.Context, raw string, timeout time.Duration) (*player, error) {
	addr, uri, err := flvTarget(raw)
	if err != nil {
		return nil, err
	}
	return dialPlayer(ctx, addr, timeout, func(p *player) error { return p.startFLV(addr, uri) })
}

func (p *player) startFLV(host, uri string) error {
	req := "GET " + uri + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: portier-bench\r\nAccept: */*\r\n\r\n"
	if _, err := io.WriteString(p.conn, req); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	// ReadResponse parses the status and header from p.br and leaves the
	// body there: flvBody reads it, res.Body is never used.
	res, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("play refused: %s", res.Status)
	}
	p.flv = &flvBody{br: p.br}
	switch {
	case len(res.TransferEncoding) == 1 && res.TransferEncoding[0] == "chunked":
		p.flv.chunked = true
	case len(res.TransferEncoding) > 0:
		return fmt.Errorf("transfer encoding %v", res.TransferEncoding)
	case res.ContentLength >= 0:
		return fmt.Errorf("a live stream with Content-Length %d", res.ContentLength)
	}
	var h [9]byte
	if err := p.flv.read(h[:]); err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return fmt.Errorf("not an FLV stream (starts %q)", h[:3])
	}
	off := int(h[5])<<24 | int(h[6])<<16 | int(h[7])<<8 | int(h[8])
	if off < 9 || off > 1<<10 {
		return fmt.Errorf("flv header size %d", off)
	}
	// The rest of the header and PreviousTagSize0.
	if err := p.flv.discard(off - 9 + 4); err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	for range playStartWaitMsgs {
		m, err := p.readFLVTag()
		if err != nil {
			return fmt.Errorf("wait for first media: %w", err)
		}
		if m.isMedia {
			p.onMedia(m)
			return nil
		}
	}
	return errors.New("no media after many tags")
}

// readFLVTag reads one tag (header, skipped body, PreviousTagSize) and
// returns it as the RTMP message it carries, without its payload.
func (p *player) readFLVTag() (message, error) {
	var h [11]byte
	if err := p.flv.read(h[:]); err != nil {
		// The last chunk, or a body without length closed at a tag
		// boundary, ends the stream; anything else is a lost connection.
		if p.flv.ended || !p.flv.chunked && err == io.EOF {
			return message{}, ErrStreamEnded
		}
		return message{}, err
	}
	if h[0]&0x20 != 0 {
		return message{}, errors.New("encrypted FLV tag")
	}
	typ := h[0] & 0x1f
	size := uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])
	ts := uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]) | uint32(h[7])<<24
	if err := p.flv.discard(int(size) + 4); err != nil {
		return message{}, fmt.Errorf("flv tag body: %w", err)
	}
	return message{typeID: typ, timestamp: ts, length: size, isMedia: typ == msgAudio || typ == msgVideo}, nil
}
