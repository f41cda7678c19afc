package httpflv

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// Viewers on their own connections have no goroutine while they keep up:
// the publisher writes to them. Each gets every frame in order; one that
// stops reading for longer than its socket buffers hold catches up through
// a goroutine started for it; and each one's leaving is seen at the next
// write and logged.
func TestViewersHaveNoGoroutine(t *testing.T) {
	const viewers, frames, size = 20, 100, 64 << 10
	logs := &lockedBuffer{}
	hub := stream.NewHub(stream.HubParams{PublisherGrace: -1})
	t.Cleanup(hub.Close)
	h, err := New(Params{Hub: hub, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pub, err := hub.Publish("live/s", stream.PublisherInfo{})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(i int) *stream.Unit {
		p := make([]byte, size)
		p[0], p[1] = 0x27, 1
		if i == 0 {
			p[0] = 0x17
		}
		p[5] = byte(i)
		return &stream.Unit{Kind: stream.KindVideo, Key: i == 0, DTS: int64(40 * i), Payload: p}
	}
	if err := pub.Write(frame(0)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	before := runtime.NumGoroutine()

	// Raw connections, read by this goroutine only: every goroutine
	// counted below is the server's.
	readers := make([]*flv.Reader, viewers)
	conns := make([]net.Conn, viewers)
	for i := range viewers {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		defer c.Close()
		fmt.Fprintf(c, "GET /live/s.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		req, _ := http.NewRequest(http.MethodGet, "/live/s.flv", nil)
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("viewer %d: %v %v", i, resp, err)
		}
		readers[i] = flv.NewReader(resp.Body, 0)
	}
	next := make([]int, viewers)
	read := func(i int) {
		t.Helper()
		tag, err := readers[i].Next()
		if err != nil {
			t.Fatalf("viewer %d: %v\n%s", i, err, logs.String())
		}
		if tag.Type != flv.TagVideo || int(tag.Payload[5]) != next[i] {
			t.Fatalf("viewer %d: got type %d frame %d, want frame %d", i, tag.Type, tag.Payload[5], next[i])
		}
		next[i]++
	}
	for i := range viewers {
		read(i)
	}
	var during int
	testutil.Eventually(t, 5*time.Second, "the server's goroutines to settle", func() bool {
		runtime.GC()
		during = runtime.NumGoroutine()
		return during-before < viewers/4
	})
	t.Logf("goroutines: %d before %d viewers, %d while they watch", before, viewers, during)

	// Viewer 0 stops reading for 6.4 MB while the others read every frame.
	for f := 1; f < frames; f++ {
		if err := pub.Write(frame(f)); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < viewers; i++ {
			read(i)
		}
	}
	for next[0] < frames {
		read(0)
	}

	for _, c := range conns {
		c.Close()
	}
	// A departure shows at the next write.
	if err := pub.Write(frame(frames)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "every viewer's leaving to be logged", func() bool {
		if err := pub.Write(frame(frames + 1)); err != nil {
			t.Fatal(err)
		}
		return strings.Count(logs.String(), "httpflv connection closed") == viewers
	})
}
