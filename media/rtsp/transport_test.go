package rtsp

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
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

// An encoder with only user and password fields publishes with the stream
// key as the password: the server challenges (401, Basic) a publish that
// gave no key, and passes the password on as ?key=.
func TestKeyAsPassword(t *testing.T) {
	s, hub := startServer(t, func(p *Params) {
		p.Authorize = func(_ context.Context, r AuthRequest) (AuthResult, error) {
			q, _ := url.ParseQuery(r.RawQuery)
			switch q.Get("key") {
			case "s3cret/+":
				return AuthResult{Allow: true}, nil
			case "":
				return AuthResult{}, fmt.Errorf("control plane: %w", ErrUnauthorized)
			}
			return AuthResult{Reason: "wrong key"}, nil
		}
	})
	host := s.Addr().String()
	refused := []struct{ url, want string }{
		{"rtsp://" + host + "/live/cam", "401 Unauthorized"},
		{"rtsp://cam:wrong@" + host + "/live/cam", "403 Forbidden: wrong key"},
	}
	for _, c := range refused {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pub := peers.Publish(t, ctx, c.url, peers.PublishOpts{})
		select {
		case <-pub.Done():
		case <-ctx.Done():
			t.Fatalf("%s: ffmpeg still running after a refusal", c.url)
		}
		cancel()
		if !strings.Contains(pub.Stderr(), c.want) {
			t.Fatalf("%s: ffmpeg output lacks %q:\n%s", c.url, c.want, pub.Stderr())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, "rtsp://cam:"+url.QueryEscape("s3cret/+")+"@"+host+"/live/cam", peers.PublishOpts{RTSPTransport: "udp"})
	defer pub.Stop()
	waitLive(t, hub, "live/cam", pub)
}

// ffmpeg publishing AAC in LATM (-rtpflags latm, as GStreamer's default
// rtspclientsink does) is accepted, and the hub gets plain AAC that RTMP
// and HTTP-FLV players can play.
func TestPublishLATM(t *testing.T) {
	s, hub := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, rtspURL(s, "live/latm"), peers.PublishOpts{ExtraOutputArgs: []string{"-rtpflags", "latm"}})
	defer pub.Stop()
	waitLive(t, hub, "live/latm", pub)
	testutil.Eventually(t, 5*time.Second, "an aac-latm flow (ffmpeg sending LATM)", func() bool {
		for _, f := range s.Stats() {
			if f.Path == "live/latm" && f.Codec == "aac-latm" && f.Packets > 0 {
				return true
			}
		}
		return false
	})
	sum := readHub(t, hub, "live/latm", 3*time.Second)
	if sum.sampleRate != 44100 || sum.chans != 2 || sum.audioFrames < 50 || !sum.audioMon {
		t.Fatalf("hub audio: %+v", sum)
	}
}
