package rtsppull

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/rtsp"
	"github.com/portier/portier/media/stream"
	"github.com/portier/portier/tests/peers"
)

func testLogger() *slog.Logger {
	if os.Getenv("RTSPPULL_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// source is an RTSP server (our own, on its own hub) that ffmpeg publishes
// a test stream to: the camera the puller pulls from.
type source struct {
	srv *rtsp.Server
	hub *stream.Hub
}

func startSource(t *testing.T) *source {
	t.Helper()
	hub := stream.NewHub(stream.HubParams{Logger: testLogger(), PublisherGrace: -1})
	srv, err := rtsp.New(rtsp.Params{Addr: "127.0.0.1:0", UDPRTPAddr: "127.0.0.1:0", Hub: hub, Logger: testLogger(), PlayIdle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); hub.Close() })
	return &source{srv: srv, hub: hub}
}

func (s *source) url(path string) string { return "rtsp://" + s.srv.Addr().String() + "/" + path }

// publish starts ffmpeg publishing to the source and waits until the
// source hub has the stream.
func (s *source) publish(t *testing.T, ctx context.Context, path string) *peers.Proc {
	t.Helper()
	p := peers.Publish(t, ctx, s.url(path), peers.PublishOpts{})
	testutil.Eventually(t, 20*time.Second, "source has the stream", func() bool {
		if p.Exited() {
			t.Fatalf("ffmpeg exited: %s", p.Stderr())
		}
		for _, si := range s.hub.Streams() {
			if si.Path == path && si.Live {
				return true
			}
		}
		return false
	})
	return p
}

// readMedia reads path from hub until it has seen an H.264 sequence
// header, a video keyframe and AAC audio, or fails after d.
func readMedia(t *testing.T, hub *stream.Hub, path string, d time.Duration) stream.CodecInfo {
	t.Helper()
	testutil.Eventually(t, d, path+" published in the hub", func() bool { return slices.Contains(hub.Published(), path) })
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := hub.Read(ctx, path, stream.ReaderParams{})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer r.Close()
	var header, key, audio bool
	for !(header && key && audio) {
		units, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("read %s: header %v keyframe %v audio %v: %v", path, header, key, audio, err)
		}
		for _, u := range units {
			switch u.Kind {
			case stream.KindVideo:
				v, err := flv.ParseVideoTag(u.Payload)
				if err != nil || v.CodecID != flv.CodecAVC {
					t.Fatalf("video unit: %v", err)
				}
				header = header || v.SequenceHeader()
				key = key || (u.Key && !u.Header)
			case stream.KindAudio:
				a, err := flv.ParseAudioTag(u.Payload)
				audio = audio || (err == nil && a.SoundFormat == flv.SoundAAC && !u.Header)
			}
		}
	}
	for _, si := range hub.Streams() {
		if si.Path == path {
			return si.Codec
		}
	}
	t.Fatalf("%s not in the hub", path)
	return stream.CodecInfo{}
}

func startPuller(t *testing.T, p Params) *Puller {
	t.Helper()
	if p.Logger == nil {
		p.Logger = testLogger()
	}
	pl, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	pl.Start()
	t.Cleanup(func() { pl.Close() })
	return pl
}

// The puller pulls an RTSP stream (over UDP and over TCP) into the hub:
// H.264 and AAC arrive as hub units with their codec information.
func TestPullIntoHub(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	src := startSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.publish(t, ctx, "live/cam")
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			hub := stream.NewHub(stream.HubParams{Logger: testLogger()})
			defer hub.Close()
			pl := startPuller(t, Params{Hub: hub, Path: "live/pulled-" + tr, URL: src.url("live/cam"), Transport: tr})
			ci := readMedia(t, hub, "live/pulled-"+tr, 20*time.Second)
			if ci.VideoCodec != "h264" || ci.Width != 640 || ci.Height != 360 || ci.AudioCodec != "aac" || ci.SampleRate != 44100 {
				t.Errorf("codec info %+v, want h264 640x360 and aac 44100", ci)
			}
			st := pl.Status()
			if !st.Playing || st.Sessions != 1 {
				t.Errorf("status %+v, want playing, one session", st)
			}
			for _, si := range hub.Streams() {
				if si.Path == "live/pulled-"+tr && si.Publisher.Protocol != Protocol {
					t.Errorf("publisher protocol %q, want %q", si.Publisher.Protocol, Protocol)
				}
			}
			pl.Close()
			testutil.Eventually(t, 5*time.Second, "publish ended by Close", func() bool {
				for _, si := range hub.Streams() {
					if si.Path == "live/pulled-"+tr && si.Live {
						return false
					}
				}
				return true
			})
		})
	}
}

// The source goes away (its encoder stops, so DESCRIBE answers 404) and
// comes back: the puller retries with backoff and plays again.
func TestPullReconnects(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	src := startSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	enc := src.publish(t, ctx, "live/cam")
	hub := stream.NewHub(stream.HubParams{Logger: testLogger(), PublisherGrace: -1})
	defer hub.Close()
	pl := startPuller(t, Params{Hub: hub, Path: "live/pulled", URL: src.url("live/cam"), Transport: "tcp",
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, ReadTimeout: 2 * time.Second})
	readMedia(t, hub, "live/pulled", 20*time.Second)

	enc.Stop()
	testutil.Eventually(t, 20*time.Second, "puller noticed the source is gone and keeps retrying", func() bool {
		st := pl.Status()
		return !st.Playing && st.Failures >= 2
	})
	src.publish(t, ctx, "live/cam")
	testutil.Eventually(t, 20*time.Second, "puller plays again", func() bool {
		st := pl.Status()
		return st.Playing && st.Sessions == 2
	})
	readMedia(t, hub, "live/pulled", 20*time.Second)
}

// A server that answers garbage, or none at all, never crashes the
// puller: it fails, backs off (bounded by MaxBackoff) and retries; Close
// ends it at once.
func TestPullBadServers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				_, _ = c.Write([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 20\r\n\r\nv=0\r\nm=garbage\x00\xff\xfe"))
			}()
		}
	}()
	closed := peers.FreeAddr(t)
	hub := stream.NewHub(stream.HubParams{Logger: testLogger()})
	defer hub.Close()
	var pls []*Puller
	for i, addr := range []string{ln.Addr().String(), closed} {
		pls = append(pls, startPuller(t, Params{Hub: hub, Path: "live/bad" + string(rune('a'+i)), URL: "rtsp://" + addr + "/x",
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, ReadTimeout: time.Second}))
	}
	for _, pl := range pls {
		testutil.Eventually(t, 20*time.Second, "failed attempts retried", func() bool { return pl.Status().Failures >= 3 })
		st := pl.Status()
		if st.Playing || st.Sessions != 0 || st.LastError == "" {
			t.Errorf("status %+v, want failing without a session", st)
		}
	}
	if live := hub.Published(); len(live) != 0 {
		t.Errorf("bad sources published %v", live)
	}
	done := make(chan struct{})
	go func() {
		for _, pl := range pls {
			pl.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the retry loop")
	}
}

// New refuses what cannot work, saying what is wrong; the URL in Status
// and logs never carries the password.
func TestNewValidates(t *testing.T) {
	hub := stream.NewHub(stream.HubParams{})
	defer hub.Close()
	for _, p := range []Params{
		{Path: "live/a", URL: "rtsp://h/x"},
		{Hub: hub, Path: "nopath", URL: "rtsp://h/x"},
		{Hub: hub, Path: "live/a", URL: "http://h/x"},
		{Hub: hub, Path: "live/a", URL: "rtsp:///x"},
		{Hub: hub, Path: "live/a", URL: "rtsp://h/x", Transport: "multicast"},
	} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%+v) accepted", p)
		}
	}
	pl, err := New(Params{Hub: hub, Path: "live/a", URL: "rtsp://admin:secret@cam.example:554/stream1"})
	if err != nil {
		t.Fatal(err)
	}
	if st := pl.Status(); st.URL != "rtsp://cam.example:554/stream1" {
		t.Errorf("status URL %q, want it without credentials", st.URL)
	}
	if err := pl.Close(); err != nil { // never started
		t.Fatal(err)
	}
	pl.Start() // after Close: nothing runs
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
}

// fakeAuth refuses the first refusals asks, then grants with a tag, and
// records what it was told.
type fakeAuth struct {
	mu       sync.Mutex
	refusals int
	asked    int
	done     []Grant
}

func (a *fakeAuth) AuthorizePull(_ context.Context, path, source string) (Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked++
	if a.asked <= a.refusals {
		return Grant{}, errors.New("stream disabled")
	}
	return Grant{Tag: "7/" + strconv.Itoa(a.asked)}, nil
}

func (a *fakeAuth) PullDone(path string, g Grant) {
	a.mu.Lock()
	a.done = append(a.done, g)
	a.mu.Unlock()
}

func (a *fakeAuth) state() (int, []Grant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked, slices.Clone(a.done)
}

// With an Authorizer, every session's publish is asked for: a refusal is
// retried with backoff and publishes nothing; a grant publishes with its
// tag (which the control plane's end orders name), and its end is told.
func TestPullAuthorized(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	src := startSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.publish(t, ctx, "live/cam")
	hub := stream.NewHub(stream.HubParams{Logger: testLogger()})
	defer hub.Close()
	auth := &fakeAuth{refusals: 2}
	pl := startPuller(t, Params{Hub: hub, Path: "live/cam1", URL: src.url("live/cam"), Transport: "tcp", Authorizer: auth,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	readMedia(t, hub, "live/cam1", 20*time.Second)
	if st := pl.Status(); st.Failures != 2 || st.Sessions != 1 || !strings.Contains(st.LastError, "stream disabled") {
		t.Errorf("status %+v, want 2 refusals then one session", st)
	}
	for _, si := range hub.Streams() {
		if si.Path == "live/cam1" && si.Publisher.Tag != "7/3" {
			t.Errorf("publisher tag %q, want the grant's 7/3", si.Publisher.Tag)
		}
	}
	pl.Close()
	if asked, done := auth.state(); asked != 3 || len(done) != 1 || done[0].Tag != "7/3" {
		t.Errorf("asked %d times, told done %+v; want 3 asks and the granted publish's end", asked, done)
	}
}
