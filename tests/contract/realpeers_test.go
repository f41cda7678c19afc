package contract

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/tests/peers"
)

// refused waits for a publisher the media server should refuse to exit.
func refused(t *testing.T, p *peers.Proc, why string) {
	t.Helper()
	if _, ok := p.WaitTimeout(20 * time.Second); !ok {
		t.Fatalf("%s: the publisher is still running; the server accepted it", why)
	}
}

// TestRealNginxRTMP runs Debian's nginx with libnginx-mod-rtmp whose
// on_publish and on_publish_done point at /hooks/nginx-rtmp, and publishes
// with ffmpeg: wrong key refused, right key accepted, key as the stream name
// renamed to the public name, live state following each publish.
func TestRealNginxRTMP(t *testing.T) {
	e := newEnv(t, modelstest.SQLite(t), envOpts{})
	hook := e.ts.URL + "/hooks/nginx-rtmp?token=" + url.QueryEscape(token)
	ng := peers.NginxRTMP(t, peers.NginxOpts{OnPublish: hook, OnPublishDone: hook})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := peers.Publish(t, ctx, ng.RTMPURL("live", "livestream")+"?key=wrong", peers.PublishOpts{})
	refused(t, p, "wrong key")
	p = peers.Publish(t, ctx, ng.RTMPURL("live", "nosuchstream")+"?key="+e.key, peers.PublishOpts{})
	refused(t, p, "unknown stream")
	e.wantLive(false, "after refused publishes")

	p = peers.Publish(t, ctx, ng.RTMPURL("live", "livestream")+"?key="+url.QueryEscape(e.key), peers.PublishOpts{})
	if err := p.WaitFrames(ctx, 25); err != nil {
		t.Fatalf("right key: %v\n%s", err, p.Stderr())
	}
	e.waitLive(true, 10*time.Second, "right key")
	if _, err := peers.ProbeUntil(t, ctx, ng.RTMPURL("live", "livestream")); err != nil {
		t.Fatalf("play: %v", err)
	}
	p.Stop()
	e.waitLive(false, 10*time.Second, "publisher stopped")

	// OBS style: the key as the stream name. nginx-rtmp follows the 302 and
	// publishes under the public name.
	p = peers.Publish(t, ctx, ng.RTMPURL("live", e.key), peers.PublishOpts{})
	if err := p.WaitFrames(ctx, 25); err != nil {
		t.Fatalf("key as name: %v\n%s", err, p.Stderr())
	}
	e.waitLive(true, 10*time.Second, "key as name")
	r, err := peers.ProbeUntil(t, ctx, ng.RTMPURL("live", "livestream"))
	if err != nil {
		t.Fatalf("the renamed stream is not playable under its public name: %v", err)
	}
	if v, _ := r.Video(); v.CodecName != "h264" {
		t.Fatalf("renamed stream: %+v", r)
	}
	p.Stop()
	e.waitLive(false, 10*time.Second, "renamed publisher stopped")
}

// TestRealMediaMTX runs MediaMTX with authMethod http pointed at
// /hooks/mediamtx and publishes over RTMP and RTSP with right and wrong keys.
func TestRealMediaMTX(t *testing.T) {
	e := newEnv(t, modelstest.SQLite(t), envOpts{})
	m := peers.StartMediaMTX(t, peers.MediaMTXOpts{AuthHTTPAddress: e.ts.URL + "/hooks/mediamtx?token=" + url.QueryEscape(token)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	for _, c := range []struct{ name, url string }{
		{"rtmp wrong key", m.RTMPURL("live/livestream") + "?key=wrong"},
		{"rtsp wrong key", m.RTSPURL("live/livestream") + "?key=wrong"},
		{"rtsp wrong password", strings.Replace(m.RTSPURL("live/livestream"), "rtsp://", "rtsp://u:wrong@", 1)},
	} {
		refused(t, peers.Publish(t, ctx, c.url, peers.PublishOpts{}), c.name)
	}
	e.wantLive(false, "after refused publishes")

	for _, c := range []struct{ name, url, play string }{
		{"rtmp key", m.RTMPURL("live/livestream") + "?key=" + url.QueryEscape(e.key), m.RTSPURL("live/livestream")},
		{"rtsp password", strings.Replace(m.RTSPURL("live/livestream"), "rtsp://", "rtsp://u:"+url.PathEscape(e.key)+"@", 1), m.RTSPURL("live/livestream")},
	} {
		p := peers.Publish(t, ctx, c.url, peers.PublishOpts{})
		if err := p.WaitFrames(ctx, 50); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, p.Stderr())
		}
		e.waitLive(true, 10*time.Second, c.name)
		if _, err := peers.ProbeUntil(t, ctx, c.play); err != nil {
			t.Fatalf("%s: read through the hook: %v", c.name, err)
		}
		p.Stop()
		// MediaMTX has no unpublish hook: runOnUnpublish calls this.
		if r := e.do("POST", withToken("/hooks/mediamtx/unpublish?path=live/livestream"), "", ""); r.status != 200 {
			t.Fatalf("unpublish: %d", r.status)
		}
		e.wantLive(false, c.name+" unpublished")
	}
}
