package rtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer accepts RTMP connections on 127.0.0.1:0 and hands each
// accepted request to handle.
type testServer struct {
	ln  net.Listener
	wg  sync.WaitGroup
	url string
}

func newTestServer(t *testing.T, cfg ServerConfig, handle func(c *ServerConn, req *Request)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, url: "rtmp://" + ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c := NewServerConn(nc, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				req, err := c.Accept(ctx)
				if err != nil {
					return
				}
				handle(c, req)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishToServer(t *testing.T) {
	type result struct {
		req  *Request
		msgs []Message
		err  error
	}
	done := make(chan result, 1)
	srv := newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		if err := c.AcceptPublish(); err != nil {
			done <- result{req: req, err: err}
			return
		}
		var msgs []Message
		for {
			m, err := c.ReadMessage()
			if err != nil {
				done <- result{req: req, msgs: msgs, err: err}
				return
			}
			msgs = append(msgs, m)
		}
	})
	cc, err := Dial(testCtx(t), srv.url+"/live?token=t1", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Publish(testCtx(t), "cam?key=abc"); err != nil {
		t.Fatal(err)
	}
	timestamps := []uint32{0, 40, 0xfffff0, 0xffffff, 0x1000020, 0xffffffe0, 0x10}
	for i, ts := range timestamps {
		if err := cc.WriteMessage(Message{Type: TypeVideo, Timestamp: ts, Payload: payloadOf(10000+i, byte(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish")
	}
	if r.err != io.EOF {
		t.Fatalf("server ReadMessage ended with %v, want io.EOF", r.err)
	}
	if r.req.Kind != KindPublish || r.req.App != "live" || r.req.Name != "cam" || r.req.Query.Get("key") != "abc" || r.req.Query.Get("token") != "t1" {
		t.Fatalf("request %+v", r.req)
	}
	if !strings.HasSuffix(r.req.TcURL, "/live?token=t1") || r.req.RawQuery != "token=t1&key=abc" || r.req.PublishType != "live" {
		t.Fatalf("request %+v", r.req)
	}
	if len(r.msgs) != len(timestamps) {
		t.Fatalf("server got %d messages, want %d", len(r.msgs), len(timestamps))
	}
	for i, m := range r.msgs {
		if m.Timestamp != timestamps[i] || len(m.Payload) != 10000+i || m.Payload[5] != payloadOf(10000+i, byte(i))[5] {
			t.Fatalf("message %d: ts %#x len %d", i, m.Timestamp, len(m.Payload))
		}
	}
}

func TestRejectPublish(t *testing.T) {
	srv := newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		c.Reject("NetStream.Publish.BadName", "stream key is wrong")
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = cc.Publish(testCtx(t), "cam?key=bad")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != "NetStream.Publish.BadName" || se.Description != "stream key is wrong" {
		t.Fatalf("Publish = %v, want BadName status error", err)
	}
	if !strings.Contains(err.Error(), "NetStream.Publish.BadName") || !strings.Contains(err.Error(), "stream key is wrong") {
		t.Fatalf("error text %q", err)
	}
}

func TestRejectPlay(t *testing.T) {
	srv := newTestServer(t, ServerConfig{}, func(c *ServerConn, req *Request) {
		c.Reject("NetStream.Play.StreamNotFound", "no such stream")
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = cc.Play(testCtx(t), "nothing")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != "NetStream.Play.StreamNotFound" {
		t.Fatalf("Play = %v, want StreamNotFound", err)
	}
}

// TestPlayUnderLoad plays to our client while several goroutines write
// shared pre-chunked media and the client sends acknowledgements (small
// window) and ping requests, which the server's read loop answers on the
// same socket. Run with -race: go-rtmp v0.0.7 races here.
// TestPlayUnderLoad writes from several goroutines while the player pings
// every millisecond and acknowledges every 4 KB, with the player's messages
// read by a goroutine of its own and by the Poller.
func TestPlayUnderLoad(t *testing.T) {
	t.Run("goroutine", func(t *testing.T) { testPlayUnderLoad(t, ServerConfig{WindowAckSize: 8192}) })
	t.Run("poller", func(t *testing.T) {
		testPlayUnderLoad(t, ServerConfig{WindowAckSize: 8192, Poller: newTestPoller(t)})
	})
}

func testPlayUnderLoad(t *testing.T, cfg ServerConfig) {
	const writers, perWriter = 4, 300
	payload := payloadOf(3000, 1)
	var pings atomic.Int32
	var client atomic.Pointer[ClientConn]
	serverDone := make(chan error, 1)
	srv := newTestServer(t, cfg, func(c *ServerConn, req *Request) {
		if req.Kind != KindPlay || req.Name != "load" {
			serverDone <- fmt.Errorf("request %+v", req)
			return
		}
		if err := c.AcceptPlay(); err != nil {
			serverDone <- err
			return
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					ts := uint32(0xfffff00 + i*20)
					b := AppendChunks(nil, CSIDVideo+uint32(w)*10, c.StreamID(), TypeVideo, ts, payload, c.ChunkSize())
					if err := c.WriteChunks(b[:len(b)/2], b[len(b)/2:]); err != nil {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			serverDone <- err
			return
		}
		// The client acknowledges every 4096 bytes: poll until its
		// acknowledgements have caught up with most of what was written.
		deadline := time.Now().Add(10 * time.Second)
		for uint64(c.AckedBytes()) < c.BytesWritten()/2 {
			if time.Now().After(deadline) {
				serverDone <- fmt.Errorf("acknowledged %d of %d bytes", c.AckedBytes(), c.BytesWritten())
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The client pings every millisecond while it reads: end only
		// once one answer reached it, or a fast machine ends the
		// transfer before the first ping.
		for client.Load() == nil || client.Load().pongs.Load() == 0 {
			if time.Now().After(deadline) {
				serverDone <- errors.New("no ping answered before the end of the transfer")
				return
			}
			time.Sleep(time.Millisecond)
		}
		serverDone <- c.PlayEnd()
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{WindowAckSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	client.Store(cc)
	defer cc.Close()
	if err := cc.Play(testCtx(t), "load"); err != nil {
		t.Fatal(err)
	}
	stopPing := make(chan struct{})
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		for i := uint32(0); ; i++ {
			select {
			case <-stopPing:
				return
			case <-time.After(time.Millisecond):
			}
			if cc.write(appendUserControl(nil, EventPingRequest, i)) != nil {
				return
			}
			pings.Add(1)
		}
	}()
	got := 0
	for {
		m, err := cc.ReadMessage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if m.Type == TypeVideo {
			if len(m.Payload) != len(payload) || m.Payload[2999] != payload[2999] {
				t.Fatalf("message %d corrupted", got)
			}
			got++
		}
	}
	close(stopPing)
	<-pingDone
	if got != writers*perWriter {
		t.Fatalf("received %d video messages, want %d", got, writers*perWriter)
	}
	cc.Close()
	if err := <-serverDone; err != nil {
		t.Fatal(err)
	}
	if pings.Load() == 0 || cc.pongs.Load() == 0 {
		t.Fatalf("%d pings sent, %d responses received", pings.Load(), cc.pongs.Load())
	}
	t.Logf("%d messages, %d pings", got, pings.Load())
}

func TestHandshakeDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{3, 1, 2}) // a handshake that never completes
	start := time.Now()
	_, err = NewServerConn(sc, ServerConfig{HandshakeTimeout: 200 * time.Millisecond}).Accept(context.Background())
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("Accept = %v, want handshake error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Accept took %v", d)
	}
}

func TestAcceptCancelled(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := NewServerConn(a, ServerConfig{}).Accept(ctx)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Accept = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after cancel")
	}
}

func TestBuildRequest(t *testing.T) {
	cases := []struct {
		app, tc, name    string
		wantApp, wantNm  string
		wantRaw, wantKey string
	}{
		{"live", "rtmp://h/live", "test?key=abc", "live", "test", "key=abc", "abc"},
		{"live?key=x", "rtmp://h/live?key=x", "test", "live", "test", "key=x", "x"},
		{"live", "rtmp://h/live?key=y", "test", "live", "test", "key=y", "y"},
		{"live/", "", "a", "live", "a", "", ""},
	}
	for _, c := range cases {
		r := buildRequest(c.app, c.tc, c.name)
		if r.App != c.wantApp || r.Name != c.wantNm || r.RawQuery != c.wantRaw || r.Query.Get("key") != c.wantKey {
			t.Errorf("buildRequest(%q,%q,%q) = %+v", c.app, c.tc, c.name, r)
		}
	}
}

// A player that sends nothing (it acknowledges only every window of bytes)
// is not cut by the idle read deadline, which applies to publishers.
func TestSilentPlayerNotTimedOut(t *testing.T) {
	const idle = 200 * time.Millisecond
	srv := newTestServer(t, ServerConfig{ReadTimeout: idle}, func(c *ServerConn, req *Request) {
		if err := c.AcceptPlay(); err != nil {
			return
		}
		select {
		case <-c.Done():
			return
		case <-time.After(3 * idle): // longer than the idle deadline, on purpose
		}
		_ = c.WriteMessage(Message{Type: TypeAudio, Timestamp: 7, Payload: []byte{0xaf, 1, 2}})
		<-c.Done()
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Play(testCtx(t), "quiet"); err != nil {
		t.Fatal(err)
	}
	m, err := cc.ReadMessage()
	if err != nil || m.Timestamp != 7 || m.Type != TypeAudio {
		t.Fatalf("ReadMessage = %+v, %v", m, err)
	}
}

// A publisher that stops sending is cut by the idle read deadline.
func TestIdlePublisherTimedOut(t *testing.T) {
	errc := make(chan error, 1)
	srv := newTestServer(t, ServerConfig{ReadTimeout: 200 * time.Millisecond}, func(c *ServerConn, req *Request) {
		if err := c.AcceptPublish(); err != nil {
			errc <- err
			return
		}
		_, err := c.ReadMessage()
		errc <- err
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Publish(testCtx(t), "idle"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ReadMessage = %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle publisher was not cut")
	}
}
