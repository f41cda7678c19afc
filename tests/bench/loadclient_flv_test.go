package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/httpflv"
	"github.com/portier/portier/media/rtmpserver"
	"github.com/portier/portier/media/stream"
	"github.com/portier/portier/tests/peers"
)

func TestParseChunkSize(t *testing.T) {
	for _, c := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"0\r\n", 0, true}, {"1a2F\r\n", 0x1a2f, true}, {"10;name=v\r\n", 16, true}, {"ff \r\n", 255, true},
		{"\r\n", 0, false}, {"x1\r\n", 0, false}, {"12", 0, false}, {"1000000000000000\r\n", 0, false},
	} {
		n, ok := parseChunkSize([]byte(c.line))
		if ok != c.ok || ok && n != c.n {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d, %v", c.line, n, ok, c.n, c.ok)
		}
	}
}

func TestFLVTarget(t *testing.T) {
	addr, uri, err := flvTarget("http://127.0.0.1:8081/live/x.flv?token=a")
	if err != nil || addr != "127.0.0.1:8081" || uri != "/live/x.flv?token=a" {
		t.Errorf("got %q %q %v", addr, uri, err)
	}
	if addr, _, _ := flvTarget("http://localhost/live/x.flv"); addr != "localhost:80" {
		t.Errorf("default port: %q", addr)
	}
	for _, bad := range []string{"rtmp://x/live/a", "http:///x.flv", "http://x", "::"} {
		if _, _, err := flvTarget(bad); err == nil {
			t.Errorf("flvTarget(%q): no error", bad)
		}
	}
}

// inProcessRelay is a hub with our RTMP server and HTTP-FLV handler on
// loopback ports: the server side of the FLV player's tests.
func inProcessRelay(t *testing.T) (rtmpURL, flvURL string) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	hub := stream.NewHub(stream.HubParams{Logger: log, PublisherGrace: -1})
	t.Cleanup(hub.Close)
	rs, err := rtmpserver.New(rtmpserver.Params{Addr: "127.0.0.1:0", Hub: hub, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	h, err := httpflv.New(httpflv.Params{Hub: hub, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "rtmp://" + rs.Addr().String() + "/live/x", "http://" + ln.Addr().String() + "/live/x.flv"
}

// flvSummary is what a player should count from an FLV body.
type flvSummary struct {
	video, audio, bytes, tagBytes int64
	firstTS, lastTS               uint32
}

// summarize parses body with media/flv's reader (the reference) and
// returns the counts and the length of the body up to its last whole tag.
func summarize(t *testing.T, body []byte) (flvSummary, int) {
	t.Helper()
	var s flvSummary
	cr := &countWriter{r: bytes.NewReader(body)}
	r := flv.NewReader(cr, 0)
	whole, media := 0, false
	for {
		tag, err := r.Next()
		if err != nil {
			break
		}
		whole = cr.n
		switch tag.Type {
		case flvTagAudio:
			s.audio++
		case flvTagVideo:
			s.video++
		default:
			continue
		}
		if !media {
			s.firstTS, media = tag.Timestamp, true
		}
		s.lastTS = tag.Timestamp
		s.bytes += int64(len(tag.Payload))
		s.tagBytes += int64(len(tag.Payload)) + flvTagOverhead
	}
	if s.video < 25 || s.audio < 25 {
		t.Fatalf("reference parse of %d bytes: %d video, %d audio tags", len(body), s.video, s.audio)
	}
	return s, whole
}

type countWriter struct {
	r io.Reader
	n int
}

func (c *countWriter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Reused tag types of the reference parse.
const (
	flvTagAudio = msgAudio
	flvTagVideo = msgVideo
)

// serveOnce answers one HTTP request on a loopback port with body, sent in
// chunks of random sizes (some with an extension) or, unchunked, as a body
// without length ended by closing the connection.
func serveOnce(t *testing.T, body []byte, chunked bool, seed uint64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		w := bufio.NewWriter(c)
		if !chunked {
			fmt.Fprint(w, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n")
			w.Write(body)
			w.Flush()
			return
		}
		fmt.Fprint(w, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n")
		rng := rand.New(rand.NewPCG(seed, 1))
		for len(body) > 0 {
			n := min(len(body), 1+rng.IntN(3000))
			ext := ""
			if rng.IntN(8) == 0 {
				ext = ";x=y"
			}
			fmt.Fprintf(w, "%x%s\r\n", n, ext)
			w.Write(body[:n])
			w.WriteString("\r\n")
			body = body[n:]
		}
		w.WriteString("0\r\n\r\n")
		w.Flush()
	}()
	return "http://" + ln.Addr().String() + "/live/x.flv"
}

// TestFLVPlayerCounts plays a real stream from our relay's HTTP-FLV handler
// (ffmpeg publishing over RTMP): first with RunLoad against the relay, then
// a captured piece of the same stream re-served in chunks of random size,
// where the player must count exactly what media/flv's reader parses.
func TestFLVPlayerCounts(t *testing.T) {
	rtmpURL, flvURL := inProcessRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, rtmpURL, peers.PublishOpts{VideoBitrate: 500_000})
	if err := pub.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if _, err := peers.ProbeUntil(t, ctx, flvURL); err != nil {
		t.Fatal(err)
	}

	res, err := RunLoad(ctx, LoadOpts{URL: flvURL, Players: 3, Duration: 7 * time.Second, ExpectedBitrate: pub.OutputBitrate})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connected %d kept-up %d dropped %d expected %.0f median %.0f worst lag %s errors %v",
		res.Connected, res.KeptUp, res.Dropped, res.ExpectedBitrate, res.MedianBitrate, res.WorstLag, res.Errors)
	if res.Connected != 3 || res.Dropped != 0 || res.KeptUp != 3 {
		t.Errorf("connected %d, dropped %d, kept up %d; want 3, 0, 3 (errors %v)", res.Connected, res.Dropped, res.KeptUp, res.Errors)
	}
	if math.Abs(res.MedianBitrate-res.ExpectedBitrate) > 0.05*res.ExpectedBitrate {
		t.Errorf("median player rate %.0f vs publisher %.0f: more than 5%% apart", res.MedianBitrate, res.ExpectedBitrate)
	}
	if res.WorstLag > time.Second {
		t.Errorf("worst lag %s on an idle loopback", res.WorstLag)
	}
	for i, p := range res.PerPlayer {
		if p.VideoMessages < 100 || p.AudioMessages < 100 || p.SocketBytes < p.MediaBytes {
			t.Errorf("player %d: %d video, %d audio tags, %d socket bytes for %d media bytes",
				i, p.VideoMessages, p.AudioMessages, p.SocketBytes, p.MediaBytes)
		}
	}

	// Capture two seconds of the stream as a viewer gets it.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, flvURL, nil)
	httpRes, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var captured bytes.Buffer
	stop := time.AfterFunc(2*time.Second, func() { httpRes.Body.Close() })
	_, _ = io.Copy(&captured, httpRes.Body)
	stop.Stop()
	want, whole := summarize(t, captured.Bytes())
	body := captured.Bytes()[:whole]

	for _, chunked := range []bool{true, false} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("chunked=%v/seed=%d", chunked, seed), func(t *testing.T) {
				p, err := dialFLV(ctx, serveOnce(t, body, chunked, seed), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.run(ctx); !errors.Is(err, ErrStreamEnded) {
					t.Fatalf("run: %v, want the stream's end", err)
				}
				got := flvSummary{video: p.videoMsgs, audio: p.audioMsgs, bytes: p.mediaBytes, tagBytes: p.flvBytes.Load(),
					firstTS: p.lastTS - uint32(p.maxTS), lastTS: p.lastTS}
				if got != want {
					t.Errorf("player counted %+v, reference %+v", got, want)
				}
				if p.cr.n <= uint64(len(body)) {
					t.Errorf("socket bytes %d, not more than the %d body bytes", p.cr.n, len(body))
				}
			})
		}
	}
}
