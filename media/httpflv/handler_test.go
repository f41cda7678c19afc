package httpflv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtmpserver"
	"github.com/portier/portier/media/stream"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for this test: %v", name, err)
	}
	return p
}

func newHandler(t *testing.T, hub *stream.Hub, logs io.Writer) *httptest.Server {
	t.Helper()
	h, err := New(Params{Hub: hub, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	mux := http.NewServeMux()
	mux.Handle("/flv/", http.StripPrefix("/flv", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// ffmpeg publishes over RTMP (through rtmpserver), ffprobe reads HTTP-FLV.
func TestFFprobeReadsHTTPFLV(t *testing.T) {
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
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
	srv := newHandler(t, hub, logs)

	pub := exec.Command(tool(t, "ffmpeg"), "-hide_banner", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "30",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-c:a", "aac", "-f", "flv", "rtmp://"+rs.Addr().String()+"/live/x")
	pubOut := &lockedBuffer{}
	pub.Stdout, pub.Stderr = pubOut, pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = pub.Wait(); close(waited) }()
	t.Cleanup(func() { _ = pub.Process.Kill(); <-waited })

	deadline := time.Now().Add(20 * time.Second)
	for {
		si, ok := hub.Stream("live/x")
		if ok && si.Codec.AudioCodec != "" && si.BytesIn > 20000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish did not start:\n%s", pubOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool(t, "ffprobe"), "-v", "error",
		"-show_entries", "stream=codec_name,codec_type,width,height", "-of", "json",
		srv.URL+"/flv/live/x.flv").CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var probe struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			CodecType string `json:"codec_type"`
			Width     int    `json:"width"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out[bytes.IndexByte(out, '{'):], &probe); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, s := range probe.Streams {
		got[s.CodecType] = s.CodecName
	}
	if got["video"] != "h264" || got["audio"] != "aac" {
		t.Fatalf("ffprobe over HTTP-FLV: %v, want h264+aac\n%s", got, out)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `msg="httpflv connection closed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no close log line:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNotFoundBadPathAndMethod(t *testing.T) {
	hub := stream.NewHub(stream.HubParams{})
	t.Cleanup(hub.Close)
	srv := newHandler(t, hub, io.Discard)
	for path, want := range map[string]int{
		"/flv/live/none.flv": http.StatusNotFound,
		"/flv/live/none":     http.StatusNotFound,
		"/flv/live/a/b.flv":  http.StatusNotFound,
		"/flv/live/.flv":     http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(srv.URL+"/flv/live/x.flv", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d", resp.StatusCode)
	}
}

// A viewer gets the FLV header, headers, the GOP and live tags; the
// response ends when the stream ends.
func TestStreamsTagsAndEndsWithStream(t *testing.T) {
	hub := stream.NewHub(stream.HubParams{PublisherGrace: -1})
	t.Cleanup(hub.Close)
	srv := newHandler(t, hub, io.Discard)
	pub, err := hub.Publish("live/s", stream.PublisherInfo{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(u *stream.Unit) {
		if err := pub.Write(u); err != nil {
			t.Fatal(err)
		}
	}
	write(&stream.Unit{Kind: stream.KindVideo, Header: true, Payload: []byte{0x17, 0, 0, 0, 0, 1}})
	write(&stream.Unit{Kind: stream.KindAudio, Header: true, Payload: []byte{0xaf, 0, 0x12, 0x10}})
	write(&stream.Unit{Kind: stream.KindVideo, DTS: 0x1000000, Key: true, Payload: []byte{0x17, 1, 0, 0, 0, 9}})

	resp, err := http.Get(srv.URL + "/flv/live/s.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/x-flv" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fr := flv.NewReader(resp.Body, 0)
	var got []uint8
	next := func() flv.Tag {
		tag, err := fr.Next()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		return tag
	}
	for i := 0; i < 3; i++ {
		tag := next()
		got = append(got, tag.Type)
		if tag.Timestamp != 0x1000000 {
			t.Fatalf("tag %d at %#x", i, tag.Timestamp)
		}
	}
	if !bytes.Equal(got, []uint8{flv.TagVideo, flv.TagAudio, flv.TagVideo}) {
		t.Fatalf("start tags %v, want video header, audio header, keyframe", got)
	}
	write(&stream.Unit{Kind: stream.KindAudio, DTS: 0x1000010, Payload: []byte{0xaf, 1, 5}})
	if tag := next(); tag.Type != flv.TagAudio || tag.Timestamp != 0x1000010 || !bytes.Equal(tag.Payload, []byte{0xaf, 1, 5}) {
		t.Fatalf("live tag %+v", tag)
	}
	pub.Close()
	if _, err := fr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after stream end: %v, want EOF", err)
	}
}

// Every transport gets the same tags and an orderly end with the stream:
// HTTP/1.1 (the connection taken over, chunked), HTTP/1.0 (taken over, the
// body ended by closing) and HTTP/2 (through the ResponseWriter).
func TestTransportsCarryTagsAndEnd(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			hub := stream.NewHub(stream.HubParams{PublisherGrace: -1})
			t.Cleanup(hub.Close)
			h, err := New(Params{Hub: hub, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(h.Close)
			srv := httptest.NewUnstartedServer(h)
			if proto == "HTTP/2" {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			pub, err := hub.Publish("live/s", stream.PublisherInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Write(&stream.Unit{Kind: stream.KindVideo, Header: true, Payload: []byte{0x17, 0, 0, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			if err := pub.Write(&stream.Unit{Kind: stream.KindVideo, DTS: 40, Key: true, Payload: []byte{0x17, 1, 0, 0, 0, 9}}); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/live/s.flv", nil)
			var resp *http.Response
			if proto == "HTTP/1.0" { // net/http's client speaks HTTP/1.1 only
				conn, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				if _, err := io.WriteString(conn, "GET /live/s.flv HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err = http.ReadResponse(bufio.NewReader(conn), req)
			} else {
				resp, err = srv.Client().Do(req)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			wantProto := map[string]string{"HTTP/1.1": "HTTP/1.1", "HTTP/1.0": "HTTP/1.0", "HTTP/2": "HTTP/2.0"}[proto]
			wantTE := map[string]string{"HTTP/1.1": "chunked"}[proto]
			if resp.Proto != wantProto || resp.Header.Get("Content-Type") != "video/x-flv" ||
				strings.Join(resp.TransferEncoding, ",") != wantTE {
				t.Fatalf("%s %s, type %q, transfer encoding %v", resp.Proto, resp.Status, resp.Header.Get("Content-Type"), resp.TransferEncoding)
			}
			fr := flv.NewReader(resp.Body, 0)
			for i := range 2 {
				if tag, err := fr.Next(); err != nil || tag.Type != flv.TagVideo {
					t.Fatalf("tag %d: %+v, %v", i, tag, err)
				}
			}
			if err := pub.Write(&stream.Unit{Kind: stream.KindAudio, DTS: 50, Payload: []byte{0xaf, 1, 5}}); err != nil {
				t.Fatal(err)
			}
			if tag, err := fr.Next(); err != nil || tag.Timestamp != 50 || !bytes.Equal(tag.Payload, []byte{0xaf, 1, 5}) {
				t.Fatalf("live tag %+v, %v", tag, err)
			}
			pub.Close()
			if _, err := fr.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after stream end: %v, want EOF", err)
			}
		})
	}
}

// Close ends the viewers whose connections were taken over (they outlive
// ServeHTTP) and waits for them, with the stream still live.
func TestCloseEndsTakenOverViewers(t *testing.T) {
	logs := &lockedBuffer{}
	hub := stream.NewHub(stream.HubParams{PublisherGrace: -1})
	t.Cleanup(hub.Close)
	h, err := New(Params{Hub: hub, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pub, err := hub.Publish("live/s", stream.PublisherInfo{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	if err := pub.Write(&stream.Unit{Kind: stream.KindVideo, Key: true, Payload: []byte{0x17, 1, 0, 0, 0, 9}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/live/s.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fr := flv.NewReader(resp.Body, 0)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { h.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := fr.Next(); err == nil {
		t.Fatal("the viewer still reads after Close")
	}
	if !strings.Contains(logs.String(), `reason="server closing"`) {
		t.Errorf("no close line with the reason:\n%s", logs.String())
	}
}
