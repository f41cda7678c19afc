package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/controlclient"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/media/rendezvous"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/tests/rtmpplayer"
)

// (a) ffmpeg publishes to an origin (both key forms), ffprobe plays from
// it; the control plane authorised the publish and lists the origin.
func TestRelayOriginPublishPlay(t *testing.T) {
	cp := startControlPlane(t)
	origin := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rtmpBase := "rtmp://" + origin.RTMPAddr().String() + "/live"

	// The key as the stream name (OBS style): published under the public name.
	pub := peers.Publish(t, ctx, rtmpBase+"/"+cp.Stream.PublishKey, peers.PublishOpts{})
	res, err := peers.ProbeUntil(t, ctx, rtmpBase+"/foo")
	if err != nil {
		t.Fatalf("ffprobe from origin: %v\n%s", err, pub.Stderr())
	}
	v, _ := res.Video()
	if !res.HasCodec("h264") || !res.HasCodec("aac") || v.Width != 640 || v.Height != 360 {
		t.Fatalf("ffprobe found %v %dx%d, want h264 640x360 + aac", res.Codecs(), v.Width, v.Height)
	}
	st, ok := findStream(origin.Streams(), "live/foo")
	if !ok || !st.Live || st.Resolution != "640x360" || st.Codec.VideoCodec != "h264" || st.Publisher == "" {
		t.Fatalf("relay API stream = %+v (found %v)", st, ok)
	}
	for _, s := range origin.Streams() {
		if strings.Contains(s.Path, cp.Stream.PublishKey) {
			t.Fatalf("the key appears as a stream path: %q", s.Path)
		}
	}
	c, err := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "directory lists origin-1", func() bool {
		o, err := c.Directory(ctx, "live", "foo")
		return err == nil && len(o) == 1 && o[0].Name == "origin-1" && o[0].RTMPAddress == origin.RTMPAddr().String()
	})

	// A wrong key is refused: ffmpeg exits and nothing is published.
	bad := peers.Publish(t, ctx, rtmpBase+"/bar?key=wrong", peers.PublishOpts{})
	select {
	case <-bad.Done():
	case <-ctx.Done():
		t.Fatal("ffmpeg with a wrong key kept publishing")
	}
	if _, ok := findStream(origin.Streams(), "live/bar"); ok {
		t.Fatal("a refused publish created a stream")
	}

	pub.Stop()
	testutil.Eventually(t, 10*time.Second, "directory forgets the stream after unpublish", func() bool {
		_, err := c.Directory(ctx, "live", "foo")
		return err != nil
	})
}

// (b) origin → edge with 50 players on the edge and exactly one upstream
// session at the origin.
func TestRelayEdgeFanout50(t *testing.T) {
	cp := startControlPlane(t)
	origin := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL, IdleTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
	if err := pub.WaitFrames(ctx, 10); err != nil {
		t.Fatalf("publish: %v", err)
	}
	edgeURL := "rtmp://" + edge.RTMPAddr().String() + "/live"
	const players = 50
	var ps []*rtmpplayer.Player
	for i := range players {
		p, err := rtmpplayer.Start(t, ctx, edgeURL, "foo")
		if err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		if err := p.WaitMessages(ctx, 100); err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
	}
	est, _ := findStream(relayStreams(t, edge.HTTPAddr().String()), "live/foo")
	ost, _ := findStream(relayStreams(t, origin.HTTPAddr().String()), "live/foo")
	sessions, _ := metricValue(t, edge.HTTPAddr().String(), "portier_relay_upstream_sessions")
	t.Logf("edge players %d, origin players %d, edge upstream sessions %v, upstream %s", est.Players, ost.Players, sessions, est.Upstream)
	if est.Players != players {
		t.Errorf("edge players = %d, want %d", est.Players, players)
	}
	if est.Resolution != "640x360" || est.Codec.VideoCodec != "h264" || est.Codec.AudioCodec != "aac" {
		t.Errorf("edge stream codec %+v resolution %q, want h264 640x360 + aac", est.Codec, est.Resolution)
	}
	testutil.Eventually(t, 5*time.Second, "edge stream bitrate measured", func() bool {
		st, _ := findStream(relayStreams(t, edge.HTTPAddr().String()), "live/foo")
		return st.BitrateIn > 0
	})
	if ost.Players != 1 {
		t.Errorf("origin players = %d, want exactly 1 (the edge's upstream session)", ost.Players)
	}
	if sessions != 1 || est.Upstream != origin.RTMPAddr().String() {
		t.Errorf("edge upstream sessions = %v to %q, want 1 to %s", sessions, est.Upstream, origin.RTMPAddr())
	}
	for i, p := range ps {
		_, _, back, err := p.Stats()
		if back != 0 || err != nil {
			t.Errorf("player %d: %d backwards timestamps, err %v", i, back, err)
		}
	}
	// When every player leaves, the upstream closes after the idle time.
	for _, p := range ps {
		p.Close()
	}
	testutil.Eventually(t, 10*time.Second, "edge upstream closed after the players left", func() bool {
		v, _ := metricValue(t, edge.HTTPAddr().String(), "portier_relay_upstream_sessions")
		return v == 0
	})
}

// (c) failover: the same stream published to two origin processes; an edge
// pulls from one; it is killed with SIGKILL; every player stays connected,
// sees monotonic timestamps and a media gap under one second.
func TestRelayFailoverOriginKill(t *testing.T) {
	cp := startControlPlane(t)
	o1 := startRelayProc(t, "origin-a", "origin", cp.URL)
	o2 := startRelayProc(t, "origin-b", "origin", cp.URL)
	byAddr := map[string]*relayProc{o1.rtmpAddr: o1, o2.rtmpAddr: o2}
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL,
		StaticOrigins: []string{o1.rtmpAddr, o2.rtmpAddr}, NoOriginTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, o := range []*relayProc{o1, o2} {
		p := peers.Publish(t, ctx, "rtmp://"+o.rtmpAddr+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
		if err := p.WaitFrames(ctx, 10); err != nil {
			t.Fatalf("publish to %s: %v", o.name, err)
		}
	}
	c, _ := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	testutil.Eventually(t, 15*time.Second, "both origins in the directory", func() bool {
		o, err := c.Directory(ctx, "live", "foo")
		return err == nil && len(o) == 2
	})

	const players = 10
	var ps []*rtmpplayer.Player
	for i := range players {
		p, err := rtmpplayer.Start(t, ctx, "rtmp://"+edge.RTMPAddr().String()+"/live", "foo")
		if err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.WaitMessages(ctx, 50); err != nil {
			t.Fatal(err)
		}
	}

	// RELAY_FAILOVER_KILLS raises the number of kills (the benchmark's
	// figure is the median and worst of 10); each round takes a few seconds.
	kills := 2
	if v, err := strconv.Atoi(os.Getenv("RELAY_FAILOVER_KILLS")); err == nil && v > 0 {
		kills = v
	}
	var gaps []time.Duration
	for round := range kills {
		up, _ := edge.Edge().Upstream("live/foo")
		victim := byAddr[up.Origin]
		if victim == nil {
			t.Fatalf("round %d: edge pulls from %q, not one of the origins", round, up.Origin)
		}
		// Let the players settle, then measure only the kill.
		time.Sleep(500 * time.Millisecond)
		for _, p := range ps {
			p.ResetGap()
		}
		before := make([]int, len(ps))
		for i, p := range ps {
			before[i], _, _, _ = p.Stats()
		}
		victim.kill(syscall.SIGKILL)
		t.Logf("round %d: killed %s (pid %d) while the edge pulled from it", round, victim.name, victim.cmd.Process.Pid)
		testutil.Eventually(t, 10*time.Second, "edge switched origin", func() bool {
			u, _ := edge.Edge().Upstream("live/foo")
			return u.Origin != "" && u.Origin != victim.rtmpAddr
		})
		// Two seconds of media after the switch.
		for i, p := range ps {
			if err := p.WaitMessages(ctx, before[i]+150); err != nil {
				t.Fatalf("round %d player %d after the kill: %v", round, i, err)
			}
		}
		var worst time.Duration
		for i, p := range ps {
			_, gap, back, err := p.Stats()
			if !p.Playing() || err != nil {
				t.Errorf("round %d player %d disconnected: %v", round, i, err)
			}
			if back != 0 {
				t.Errorf("round %d player %d: %d timestamps went backwards", round, i, back)
			}
			worst = max(worst, gap)
		}
		gaps = append(gaps, worst)
		t.Logf("round %d: failover media gap (worst of %d players) = %d ms", round, players, worst.Milliseconds())
		if worst >= time.Second {
			t.Errorf("round %d: media gap %v, want < 1 s", round, worst)
		}
		if round < kills-1 {
			// Bring the killed origin back with the encoder, so the
			// next round kills the other one.
			nv := startRelayProc(t, victim.name+"-restarted", "origin", cp.URL)
			delete(byAddr, victim.rtmpAddr)
			byAddr[nv.rtmpAddr] = nv
			p := peers.Publish(t, ctx, "rtmp://"+nv.rtmpAddr+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
			if err := p.WaitFrames(ctx, 10); err != nil {
				t.Fatalf("republish to %s: %v", nv.name, err)
			}
			testutil.Eventually(t, 15*time.Second, "restarted origin in the directory", func() bool {
				o, err := c.Directory(ctx, "live", "foo")
				return err == nil && len(o) == 2
			})
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	fmt.Printf("relay failover: %d SIGKILLs, media gap (worst player per kill) median %d ms, worst %d ms, all %v\n",
		kills, gaps[len(gaps)/2].Milliseconds(), gaps[len(gaps)-1].Milliseconds(), gaps)
	if f := edge.Edge().Stats().Failovers; f != uint64(kills) {
		t.Errorf("edge counted %d failovers, want %d", f, kills)
	}
}

// (d) a publish at an edge reaches the origin chosen by consistent hashing
// of the stream's public name (also when the key is used as the name), and
// a refusal at the origin reaches the encoder.
func TestRelayPublishAtEdge(t *testing.T) {
	cp := startControlPlane(t)
	// Streams are created before the relays heartbeat into the database.
	keys := map[string]string{"bar": cp.createStream(t, "bar"), "baz": cp.createStream(t, "baz")}
	cp.createStream(t, "qux") // only ever published with a wrong key
	o1 := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	o2 := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-2", ControlURL: cp.URL})
	c, _ := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	testutil.Eventually(t, 10*time.Second, "both origins alive", func() bool {
		n, err := c.LiveOrigins(ctx)
		return err == nil && len(n) == 2
	})
	edges := []*relay.Relay{
		startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL}),
		startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-2", ControlURL: cp.URL}),
	}
	origins := map[string]*relay.Relay{o1.RTMPAddr().String(): o1, o2.RTMPAddr().String(): o2}
	var mu sync.Mutex
	for i, name := range []string{"bar", "baz"} {
		key := keys[name]
		want := rendezvous.Pick("live/"+name, []string{o1.RTMPAddr().String(), o2.RTMPAddr().String()})
		e := edges[i%2]
		pub := peers.Publish(t, ctx, "rtmp://"+e.RTMPAddr().String()+"/live/"+name+"?key="+key, peers.PublishOpts{})
		testutil.Eventually(t, 15*time.Second, "stream live at the hashed origin", func() bool {
			st, ok := findStream(origins[want].Streams(), "live/"+name)
			return ok && st.Live
		})
		for addr, o := range origins {
			if _, ok := findStream(o.Streams(), "live/"+name); ok && addr != want {
				t.Errorf("live/%s also at the other origin %s", name, addr)
			}
		}
		// Players on the other edge get it through the directory.
		other := edges[(i+1)%2]
		res, err := peers.ProbeUntil(t, ctx, "rtmp://"+other.RTMPAddr().String()+"/live/"+name)
		if err != nil || !res.HasCodec("h264") {
			t.Fatalf("play live/%s from the other edge: %v %v\n%s", name, res.Codecs(), err, pub.Stderr())
		}
		mu.Lock()
		t.Logf("live/%s published at %s, forwarded to hashed origin %s", name, e.RTMPAddr(), want)
		mu.Unlock()
		pub.Stop()
	}

	// The key as the name (OBS style) through an edge: the origin publishes
	// it under the public name, and the key shows nowhere on the edge.
	pub := peers.Publish(t, ctx, "rtmp://"+edges[0].RTMPAddr().String()+"/live/"+cp.Stream.PublishKey, peers.PublishOpts{})
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+edges[1].RTMPAddr().String()+"/live/foo")
	if err != nil || !res.HasCodec("h264") {
		t.Fatalf("key-as-name publish at an edge, played as live/foo: %v %v\n%s", res.Codecs(), err, pub.Stderr())
	}
	for _, e := range edges {
		for _, st := range e.Streams() {
			if strings.Contains(st.Path, cp.Stream.PublishKey) {
				t.Errorf("the stream key shows on an edge as %q", st.Path)
			}
		}
	}
	// It went to the origin live/foo hashes to, as a NAME?key= publish would
	// (the edge resolved the key to the public name before hashing).
	want := rendezvous.Pick("live/foo", []string{o1.RTMPAddr().String(), o2.RTMPAddr().String()})
	testutil.Eventually(t, 15*time.Second, "key-as-name publish live at the origin live/foo hashes to", func() bool {
		st, ok := findStream(origins[want].Streams(), "live/foo")
		return ok && st.Live
	})
	for addr, o := range origins {
		if st, ok := findStream(o.Streams(), "live/foo"); ok && st.Live && addr != want {
			t.Errorf("key-as-name publish live at %s, not at the hashed origin %s", addr, want)
		}
	}
	pub.Stop()

	// A wrong key at the edge is refused by the origin, and ffmpeg is told.
	bad := peers.Publish(t, ctx, "rtmp://"+edges[0].RTMPAddr().String()+"/live/qux?key=wrong", peers.PublishOpts{})
	select {
	case <-bad.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("ffmpeg kept publishing with a wrong key through the edge")
	}
	for _, o := range origins {
		if _, ok := findStream(o.Streams(), "live/qux"); ok {
			t.Fatal("a refused publish reached an origin's hub")
		}
	}
	if v, _ := metricValue(t, edges[0].HTTPAddr().String(), "portier_relay_publish_refusals_total"); v < 1 {
		t.Errorf("edge refusals = %v, want >= 1", v)
	}
}

// (e) HTTP-FLV played by ffprobe, from the origin and through an edge.
func TestRelayHTTPFLV(t *testing.T) {
	cp := startControlPlane(t)
	origin := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
	if err := pub.WaitFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*relay.Relay{origin, edge} {
		res, err := peers.ProbeUntil(t, ctx, "http://"+r.HTTPAddr().String()+"/live/foo.flv")
		if err != nil {
			t.Fatalf("ffprobe HTTP-FLV: %v", err)
		}
		v, _ := res.Video()
		if !res.HasCodec("h264") || !res.HasCodec("aac") || v.Width != 640 {
			t.Fatalf("HTTP-FLV streams %v width %d", res.Codecs(), v.Width)
		}
	}
}

// (f) an RTSP publish at an edge is forwarded to the hashed origin too (the
// forward reads the hub, whatever the protocol), and its RTP statistics show
// on the edge's API; RTMP players of the origin get it.
func TestRelayRTSPPublishAtEdge(t *testing.T) {
	cp := startControlPlane(t)
	origin := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL, RTSPAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _ := controlclient.NewClient(controlclient.ClientParams{BaseURL: cp.URL, Token: relayClusterToken})
	testutil.Eventually(t, 10*time.Second, "origin alive", func() bool {
		n, err := c.LiveOrigins(ctx)
		return err == nil && len(n) == 1
	})
	pub := peers.Publish(t, ctx, "rtsp://"+edge.RTSPAddr().String()+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live/foo")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("RTMP play at the origin of an RTSP publish at the edge: %v %v\n%s", res.Codecs(), err, pub.Stderr())
	}
	var flows int
	for _, st := range edge.Streams() {
		if strings.HasPrefix(st.Name, relay.ForwardedPrefix) {
			flows += len(st.RTP)
			for _, f := range st.RTP {
				if f.Packets == 0 {
					t.Errorf("RTP flow %s/%s counted no packets", f.Path, f.Track)
				}
			}
		}
	}
	if flows < 2 {
		t.Errorf("edge API shows %d RTP flows for the forwarded RTSP publish, want 2 (video, audio)", flows)
	}
}

// (g) when no origin has the stream any more, edge players wait
// --no-origin-timeout, then are told the stream ended (not cut off).
func TestRelayEdgeNoOriginEndsPlayers(t *testing.T) {
	cp := startControlPlane(t)
	origin := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL, PublisherGrace: 500 * time.Millisecond})
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL, NoOriginTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := peers.Publish(t, ctx, "rtmp://"+origin.RTMPAddr().String()+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
	if err := pub.WaitFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}
	var ps []*rtmpplayer.Player
	for range 3 {
		p, err := rtmpplayer.Start(t, ctx, "rtmp://"+edge.RTMPAddr().String()+"/live", "foo")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitMessages(ctx, 50); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	pub.Stop()
	stopped := time.Now()
	for i, p := range ps {
		select {
		case <-p.Done():
		case <-ctx.Done():
			t.Fatalf("player %d not told the stream ended", i)
		}
		_, _, _, err := p.Stats()
		if !errors.Is(err, io.EOF) {
			t.Errorf("player %d ended with %v, want the server's end of stream (EOF)", i, err)
		}
	}
	waited := time.Since(stopped)
	t.Logf("players told the stream ended %v after the encoder stopped", waited.Round(time.Millisecond))
	if waited < 2*time.Second {
		t.Errorf("players ended after %v, before the no-origin timeout of 2 s", waited)
	}
	if v, _ := metricValue(t, edge.HTTPAddr().String(), "portier_relay_upstream_ended_no_origin_total"); v != 1 {
		t.Errorf("ended_no_origin = %v, want 1", v)
	}
}

// (h) the origin in use loses its encoder (the stream is dropped there, the
// process lives on): the edge switches to the other origin that still has
// the stream, players stay connected with a gap under one second.
func TestRelayFailoverOriginDropsStream(t *testing.T) {
	cp := startControlPlane(t)
	o1 := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-1", ControlURL: cp.URL})
	o2 := startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "origin-2", ControlURL: cp.URL})
	// An origin that lost its publisher keeps its players waiting (for the
	// encoder to come back) without a word: the edge notices the silence
	// after UpstreamReadTimeout (default 500 ms).
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "edge-1", ControlURL: cp.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	encoders := map[string]*peers.Proc{}
	for _, o := range []*relay.Relay{o1, o2} {
		p := peers.Publish(t, ctx, "rtmp://"+o.RTMPAddr().String()+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
		if err := p.WaitFrames(ctx, 10); err != nil {
			t.Fatal(err)
		}
		encoders[o.RTMPAddr().String()] = p
	}
	var ps []*rtmpplayer.Player
	for range 5 {
		p, err := rtmpplayer.Start(t, ctx, "rtmp://"+edge.RTMPAddr().String()+"/live", "foo")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitMessages(ctx, 50); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	up, _ := edge.Edge().Upstream("live/foo")
	before := make([]int, len(ps))
	for i, p := range ps {
		p.ResetGap()
		before[i], _, _, _ = p.Stats()
	}
	encoders[up.Origin].Kill()
	testutil.Eventually(t, 10*time.Second, "edge switched origin", func() bool {
		u, _ := edge.Edge().Upstream("live/foo")
		return u.Origin != "" && u.Origin != up.Origin
	})
	var worst time.Duration
	for i, p := range ps {
		if err := p.WaitMessages(ctx, before[i]+150); err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
		_, gap, back, err := p.Stats()
		if err != nil || back != 0 {
			t.Errorf("player %d: err %v, %d backwards timestamps", i, err, back)
		}
		worst = max(worst, gap)
	}
	t.Logf("origin lost its encoder: media gap (worst of %d players) = %d ms", len(ps), worst.Milliseconds())
	if worst >= time.Second {
		t.Errorf("media gap %v, want < 1 s", worst)
	}
}

// `portier relay` explains bad options instead of starting half-configured,
// and reads PORTIER_<FLAG> from the environment.
func TestRelayCommandOptions(t *testing.T) {
	bin := peers.PortierBinary(t)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"relay", "--role", "bogus"}, nil, `--role "bogus": want origin or edge`},
		{[]string{"relay", "--role", "origin", "--rtsp-addr", ""}, nil, "an origin needs --control"},
		{[]string{"relay", "--rtsp-addr", ""}, []string{"PORTIER_ROLE=edge", "PORTIER_ORIGINS=nohost"}, `--origins entry "nohost": want host:port`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, tc.args...)
		cmd.Env = append(os.Environ(), tc.env...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("portier %v (env %v): err %v, output %q; want a failure saying %q", tc.args, tc.env, err, out, tc.want)
		}
	}
}
