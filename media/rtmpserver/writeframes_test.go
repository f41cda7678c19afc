package rtmpserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// recordingHub records the reader parameters of every play.
type recordingHub struct {
	*stream.Hub
	mu  sync.Mutex
	got []stream.ReaderParams
}

func (h *recordingHub) Read(ctx context.Context, path string, p stream.ReaderParams) (*stream.Reader, error) {
	h.mu.Lock()
	h.got = append(h.got, p)
	h.mu.Unlock()
	return h.Hub.Read(ctx, path, p)
}

// Params.Reader.CoalesceFrames sets the frames per write of every player
// (the relay's --player-write-frames): 0 is one frame, negative none; and
// every player gets a Direct writer.
func TestPlayerWriteFrames(t *testing.T) {
	for _, tc := range []struct{ param, want int }{{0, playerCoalesceFrames}, {2, 2}, {-1, 0}} {
		hub := &recordingHub{Hub: stream.NewHub(stream.HubParams{})}
		srv, err := New(Params{Hub: hub, Addr: "127.0.0.1:0", Reader: stream.ReaderParams{CoalesceFrames: tc.param}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := rtmp.Dial(ctx, "rtmp://"+srv.Addr().String()+"/live", rtmp.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Play(ctx, "nobody"); err == nil {
			t.Error("playing a stream with no publisher succeeded")
		}
		c.Close()
		cancel()
		_ = srv.Close()
		hub.Close()
		hub.mu.Lock()
		got := hub.got
		hub.mu.Unlock()
		if len(got) != 1 {
			t.Fatalf("CoalesceFrames %d: %d plays reached the hub, want 1", tc.param, len(got))
		}
		if got[0].CoalesceFrames != tc.want || got[0].Direct == nil {
			t.Errorf("CoalesceFrames %d: the player read with CoalesceFrames %d (Direct set: %v), want %d with Direct",
				tc.param, got[0].CoalesceFrames, got[0].Direct != nil, tc.want)
		}
	}
}
