package rtsp

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/tests/peers"
)

// fakePublisher records tiny H.264 frames (an IDR every 10) at 25 fps over
// TCP until stop is called or its session is closed by the server; done is
// closed when it has stopped.
func fakePublisher(t *testing.T, s *Server, path string) (stop func(), done <-chan struct{}, startErr error) {
	t.Helper()
	desc := h264Session(testSPS, testPPS)
	tr := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tr}
	if err := c.StartRecording(rtspURL(s, path), desc); err != nil {
		return nil, nil, err
	}
	quit := make(chan struct{})
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		defer c.Close()
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 25*60; i++ { // bounded: one minute at most
			nalu := []byte{0x41, 0x9a, byte(i)}
			if i%10 == 0 {
				nalu = []byte{0x65, 0x88, byte(i)}
			}
			pkt := &pionrtp.Packet{Header: pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i) * 3600, Marker: true}, Payload: nalu}
			if c.WritePacketRTP(desc.Medias[0], pkt) != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(quit)
		}
		<-fin
	}, fin, nil
}

// player plays path with gortsplib's client and counts RTP packets; its
// Wait returns when the server ends the session.
func player(t *testing.T, s *Server, path string, tr gortsplib.Transport) (*gortsplib.Client, *atomic.Int64) {
	t.Helper()
	c, n, err := playRTSP(rtspURL(s, path), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, n
}

// playRTSP is player for any goroutine: it returns its error, and the
// caller closes the client.
func playRTSP(url string, tr gortsplib.Transport) (*gortsplib.Client, *atomic.Int64, error) {
	c, u, err := startClient(url, tr)
	if err != nil {
		return nil, nil, err
	}
	var n atomic.Int64
	err = func() error {
		desc, _, err := c.Describe(u)
		if err != nil {
			return err
		}
		if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
			return err
		}
		c.OnPacketRTPAny(func(*description.Media, format.Format, *pionrtp.Packet) { n.Add(1) })
		_, err = c.Play(nil)
		return err
	}()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, &n, nil
}

func fanOuts(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outs)
}

// TestPlayersEndWithTheStream: when the publisher leaves (no grace), the
// fan-out ends and its players' sessions are closed.
func TestPlayersEndWithTheStream(t *testing.T) {
	s, hub := startServer(t, nil)
	stop, _, err := fakePublisher(t, s, "live/short")
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, hub, "live/short", nil)
	c1, n1 := player(t, s, "live/short", gortsplib.TransportTCP)
	c2, n2 := player(t, s, "live/short", gortsplib.TransportUDP)
	testutil.Eventually(t, 5*time.Second, "both players receive", func() bool { return n1.Load() > 5 && n2.Load() > 5 })
	if fanOuts(s) != 1 {
		t.Fatalf("%d fan-outs for one path", fanOuts(s))
	}
	if si, _ := hub.Stream("live/short"); si.Readers != 1 {
		t.Fatalf("hub readers %d: the fan-out should read once for all RTSP players", si.Readers)
	}
	stop()
	for _, c := range []*gortsplib.Client{c1, c2} {
		errc := make(chan error, 1)
		go func() { errc <- c.Wait() }()
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Fatal("player still connected after the stream ended")
		}
	}
	testutil.Eventually(t, 5*time.Second, "fan-out removed", func() bool { return fanOuts(s) == 0 })
}

// TestIdleFanOutClosed: the fan-out outlives its last player by PlayIdle,
// then releases its hub reader.
func TestIdleFanOutClosed(t *testing.T) {
	s, hub := startServer(t, func(p *Params) { p.PlayIdle = 500 * time.Millisecond })
	stop, _, err := fakePublisher(t, s, "live/idle")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitLive(t, hub, "live/idle", nil)
	if _, err := peers.Probe(t, context.Background(), rtspURL(s, "live/idle")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "idle fan-out closed", func() bool {
		si, _ := hub.Stream("live/idle")
		return fanOuts(s) == 0 && si.Readers == 0
	})
	// A new player gets a new fan-out.
	_, n := player(t, s, "live/idle", gortsplib.TransportTCP)
	testutil.Eventually(t, 5*time.Second, "packets after reopening", func() bool { return n.Load() > 5 })
}

// TestSecondPublisherRefusedOrTakesOver: a second publisher of a live path
// is refused, unless the authoriser grants a takeover, which ends the first.
func TestSecondPublisherRefusedOrTakesOver(t *testing.T) {
	var takeover atomic.Bool
	s, hub := startServer(t, func(p *Params) {
		p.Authorize = func(context.Context, AuthRequest) (AuthResult, error) {
			return AuthResult{Allow: true, Takeover: takeover.Load()}, nil
		}
	})
	stop1, done1, err := fakePublisher(t, s, "live/dup")
	if err != nil {
		t.Fatal(err)
	}
	defer stop1()
	waitLive(t, hub, "live/dup", nil)
	_, _, err = fakePublisher(t, s, "live/dup")
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("second publisher: %v", err)
	}
	takeover.Store(true)
	stop2, _, err := fakePublisher(t, s, "live/dup")
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	defer stop2()
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("the first publisher was not disconnected by the takeover")
	}
	testutil.Eventually(t, 5*time.Second, "one publish session", func() bool { return len(s.Stats()) == 1 })
}

// TestCloseEndsEverything: Close returns promptly with a publisher and a
// player connected, and both are disconnected.
func TestCloseEndsEverything(t *testing.T) {
	s, hub := startServer(t, nil)
	stop, done, err := fakePublisher(t, s, "live/bye")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitLive(t, hub, "live/bye", nil)
	c, n := player(t, s, "live/bye", gortsplib.TransportUDP)
	testutil.Eventually(t, 5*time.Second, "player receives", func() bool { return n.Load() > 5 })
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publisher still connected")
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Wait() }()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("player still connected")
	}
	if got := hub.Published(); len(got) != 0 {
		t.Fatalf("still published: %v", got)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

// TestManyPlayersOneHubReader: twenty players over TCP and UDP share one
// hub reader and all receive the stream.
func TestManyPlayersOneHubReader(t *testing.T) {
	s, hub := startServer(t, nil)
	stop, _, err := fakePublisher(t, s, "live/many")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitLive(t, hub, "live/many", nil)
	var counts []*atomic.Int64
	for i := 0; i < 20; i++ {
		tr := gortsplib.TransportTCP
		if i%2 == 1 {
			tr = gortsplib.TransportUDP
		}
		_, n := player(t, s, "live/many", tr)
		counts = append(counts, n)
	}
	testutil.Eventually(t, 10*time.Second, "every player receives", func() bool {
		for _, n := range counts {
			if n.Load() < 10 {
				return false
			}
		}
		return true
	})
	if si, _ := hub.Stream("live/many"); si.Readers != 1 {
		t.Fatalf("hub readers %d for 20 RTSP players", si.Readers)
	}
}

// TestAnnounceWithoutRecordDropped: a client that announces and sets up
// (where the publish is authorised) and then sends nothing loses the
// stream after ReadTimeout.
func TestAnnounceWithoutRecordDropped(t *testing.T) {
	var done atomic.Int32
	s, hub := startServer(t, func(p *Params) {
		p.ReadTimeout = time.Second
		p.PublishDone = func(string, string, string) { done.Add(1) }
	})
	c, u := dialRTSP(t, rtspURL(s, "live/idler"), gortsplib.TransportTCP)
	desc := h264Session(testSPS, testPPS)
	if _, err := c.Announce(u, desc); err != nil {
		t.Fatal(err)
	}
	if got := hub.Published(); len(got) != 0 {
		t.Fatalf("published %v after ANNOUNCE: the publish is authorised at SETUP", got)
	}
	if _, err := c.Setup(u, desc.Medias[0], 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := hub.Published(); len(got) != 1 {
		t.Fatalf("published %v after SETUP", got)
	}
	testutil.Eventually(t, 5*time.Second, "idle announcer dropped", func() bool { return len(hub.Published()) == 0 && done.Load() == 1 })
}

// TestSetupWithoutPlayDropped: a player that sets up and never plays is
// dropped after ReadTimeout and the fan-out is released.
func TestSetupWithoutPlayDropped(t *testing.T) {
	s, hub := startServer(t, func(p *Params) {
		p.ReadTimeout = time.Second
		p.PlayIdle = 200 * time.Millisecond
	})
	stop, _, err := fakePublisher(t, s, "live/lazy")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitLive(t, hub, "live/lazy", nil)
	c, u := dialRTSP(t, rtspURL(s, "live/lazy"), gortsplib.TransportTCP)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Wait() }()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("idle player kept")
	}
	testutil.Eventually(t, 5*time.Second, "fan-out released", func() bool {
		si, _ := hub.Stream("live/lazy")
		return fanOuts(s) == 0 && si.Readers == 0
	})
}
