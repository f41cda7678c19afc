package rtsp

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// A server without UDP answers 461 to ffmpeg publishing over UDP only,
// before the publish is authorised: the control plane never hears of it
// (so the stream does not flap live/offline).
func TestRefusedTransportNotAuthorised(t *testing.T) {
	var asked atomic.Int32
	s, hub := startServer(t, func(p *Params) {
		p.UDPRTPAddr = ""
		p.Authorize = func(context.Context, AuthRequest) (AuthResult, error) {
			asked.Add(1)
			return AuthResult{Allow: true}, nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/udponly"), peers.PublishOpts{RTSPTransport: "udp"})
	select {
	case <-pub.Done():
	case <-ctx.Done():
		t.Fatal("ffmpeg still running after a refused transport")
	}
	if !strings.Contains(pub.Stderr(), "461") {
		t.Fatalf("ffmpeg output lacks 461:\n%s", pub.Stderr())
	}
	if n := asked.Load(); n != 0 || len(hub.Published()) != 0 {
		t.Fatalf("authorised %d times, published %v", n, hub.Published())
	}
}
