package rtsp

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/portier/portier/internal/testutil"
)

// TestConcurrentPlayersSetUp: players of one stream that run SETUP at the
// same moment, over UDP and TCP from one address, all play. gortsplib
// (v4.16.2) reads the other players' transports and media while adding a
// UDP player and writes them unlocked during SETUP; the server keeps those
// apart (handler.holdSetup), which -race checks here.
func TestConcurrentPlayersSetUp(t *testing.T) {
	s, hub := startServer(t, nil)
	stop, _, err := fakePublisher(t, s, "live/crowd")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitLive(t, hub, "live/crowd", nil)

	const rounds, players = 3, 12
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, players)
		got := make([]int64, players)
		var mu sync.Mutex
		for i := range players {
			tr := gortsplib.TransportUDP
			if i%3 == 2 {
				tr = gortsplib.TransportTCP
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := playFor(rtspURL(s, "live/crowd"), tr, 2*time.Second)
				if err != nil {
					errs <- fmt.Errorf("round %d player %d (%v): %w", round, i, tr, err)
					return
				}
				mu.Lock()
				got[i] = n
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i, n := range got {
			if n == 0 && !t.Failed() {
				t.Errorf("round %d: player %d received no packet", round, i)
			}
		}
		if t.Failed() {
			return
		}
	}
	testutil.Eventually(t, 5*time.Second, "players' sessions closed", func() bool {
		si, _ := hub.Stream("live/crowd")
		return si.Readers <= 1
	})
}

// playFor plays url over tr for d and returns the RTP packets received.
func playFor(url string, tr gortsplib.Transport, d time.Duration) (int64, error) {
	c, n, err := playRTSP(url, tr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	time.Sleep(d)
	return n.Load(), nil
}
