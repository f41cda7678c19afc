package rtmpserver

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/rtmp"
)

// Players that keep up have no goroutine of their own: the publisher
// writes to them, and what they send is read by the server's poller. They
// get every frame in order, one that stops reading catches up through a
// goroutine of its own once it reads again, and each one's leaving is seen
// and logged.
func TestPlayersHaveNoGoroutine(t *testing.T) {
	const players, frames, size = 20, 100, 64 << 10
	env := startServer(t, Params{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx, "quiet"); err != nil {
		t.Fatal(err)
	}
	frame := func(i int) rtmp.Message {
		p := make([]byte, size)
		p[0], p[1] = 0x27, 1 // inter frame, AVC NALU
		if i == 0 {
			p[0] = 0x17
		}
		p[5] = byte(i)
		return rtmp.Message{Type: rtmp.TypeVideo, Timestamp: uint32(40 * i), Payload: p}
	}
	if err := pub.WriteMessage(frame(0)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "publisher", func() bool { si, _ := env.hub.Stream("live/quiet"); return si.BytesIn >= 2000 })
	runtime.GC()
	before := runtime.NumGoroutine()

	var clients []*rtmp.ClientConn
	for range players {
		c, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Play(ctx, "quiet"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	next := make([]int, players)
	read := func(i int) {
		t.Helper()
		m, err := clients[i].ReadMessage()
		if err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
		if m.Type != rtmp.TypeVideo || int(m.Payload[5]) != next[i] {
			t.Fatalf("player %d: got %v frame %d, want frame %d", i, m.Type, m.Payload[5], next[i])
		}
		next[i]++
	}
	for i := range players {
		read(i) // the keyframe, from the join
	}
	// The players' goroutines (ours, the test's clients) do not read in
	// the background: what is left on the server is its own.
	var during int
	testutil.Eventually(t, 5*time.Second, "the server's goroutines to settle", func() bool {
		runtime.GC()
		during = runtime.NumGoroutine()
		return during-before < players/4
	})
	t.Logf("goroutines: %d before %d players, %d while they play", before, players, during)

	// Player 0 stops reading while the others read every frame: 6.4 MB,
	// more than its socket buffers hold.
	for i := 1; i < frames; i++ {
		if err := pub.WriteMessage(frame(i)); err != nil {
			t.Fatal(err)
		}
		for p := 1; p < players; p++ {
			read(p)
		}
	}
	for next[0] < frames {
		read(0)
	}

	for _, c := range clients {
		c.Close()
	}
	testutil.Eventually(t, 5*time.Second, "every player's leaving to be logged", func() bool {
		return strings.Count(env.logs.String(), `kind=play app=live name=quiet reason="player left"`) == players
	})
	testutil.Eventually(t, 5*time.Second, "the connections to be released", func() bool { return env.srv.Conns() == 1 })
}
