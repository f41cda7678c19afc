package rtmp

import (
	"errors"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/media/readpoll"
)

func newTestPoller(t *testing.T) *readpoll.Poller {
	t.Helper()
	p, err := readpoll.New()
	if errors.Is(err, readpoll.ErrUnsupported) {
		t.Skip("no epoll here")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// A player watched by the Poller is served as one with a reading goroutine
// of its own: pings are answered, acknowledgements counted, and its
// deleteStream ends the connection with io.EOF.
func TestWatchedPlayer(t *testing.T) {
	ended := make(chan error, 1)
	srv := newTestServer(t, ServerConfig{Poller: newTestPoller(t), WindowAckSize: 4096}, func(c *ServerConn, req *Request) {
		if err := c.AcceptPlay(); err != nil {
			ended <- err
			return
		}
		if c.watch.Load() == nil {
			ended <- errors.New("the play is not watched by the poller")
			return
		}
		// Enough bytes for the client to acknowledge a window.
		for i := range 4 {
			if err := c.WriteMessage(Message{Type: TypeVideo, Timestamp: uint32(i), Payload: payloadOf(3000, byte(i))}); err != nil {
				ended <- err
				return
			}
		}
		<-c.Done()
		ended <- c.Err()
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{WindowAckSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Play(testCtx(t), "watched"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := cc.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	// The ping is answered, between two messages of ours, by the
	// goroutine the poller starts.
	if err := cc.write(appendUserControl(nil, EventPingRequest, 42)); err != nil {
		t.Fatal(err)
	}
	if err := cc.writeCommand(CSIDCommand, cc.streamID, "receiveAudio", 0.0, nil, true); err != nil {
		t.Fatal(err)
	}
	cc.setReadDeadline(time.Now().Add(5 * time.Second))
	for cc.pongs.Load() == 0 {
		if _, _, err := cc.readOne(); err != nil {
			t.Fatalf("waiting for the ping's answer: %v", err)
		}
	}
	cc.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("connection ended with %v, want io.EOF from deleteStream", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the player leave")
	}
}

// A player that hangs up without a word is seen to leave at once.
func TestWatchedPlayerHangUp(t *testing.T) {
	ended := make(chan error, 1)
	srv := newTestServer(t, ServerConfig{Poller: newTestPoller(t)}, func(c *ServerConn, req *Request) {
		if err := c.AcceptPlay(); err != nil {
			ended <- err
			return
		}
		<-c.Done()
		ended <- c.Err()
	})
	cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Play(testCtx(t), "gone"); err != nil {
		t.Fatal(err)
	}
	cc.nc.Close() // no deleteStream
	select {
	case err := <-ended:
		// A close with our replies still unread is a reset.
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection ended with %v, want io.EOF or a reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the player hang up")
	}
}

// Watched players have no goroutine of their own: 50 of them cost about 50
// goroutines fewer than without the poller (here the test server keeps one
// goroutine per connection in both cases).
func TestWatchedPlayersHaveNoReadingGoroutine(t *testing.T) {
	const n = 50
	count := func(cfg ServerConfig) int {
		played := make(chan struct{}, n)
		release := make(chan struct{})
		srv := newTestServer(t, cfg, func(c *ServerConn, req *Request) {
			if c.AcceptPlay() != nil {
				return
			}
			played <- struct{}{}
			<-release
		})
		var clients []*ClientConn
		for range n {
			cc, err := Dial(testCtx(t), srv.url+"/live", ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, cc)
			if err := cc.Play(testCtx(t), "many"); err != nil {
				t.Fatal(err)
			}
		}
		for range n {
			<-played
		}
		runtime.GC()
		g := runtime.NumGoroutine()
		close(release)
		for _, cc := range clients {
			cc.Close()
		}
		return g
	}
	without := count(ServerConfig{})
	with := count(ServerConfig{Poller: newTestPoller(t)})
	if without-with < n*9/10 {
		t.Fatalf("goroutines with %d players: %d without the poller, %d with it; want about %d fewer", n, without, with, n)
	}
	t.Logf("goroutines with %d players: %d without the poller, %d with it", n, without, with)
}
