package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/tests/peers"
)

// Failover benchmark shape.
const (
	failoverKills   = 10
	failoverPlayers = 5
	// After a kill, each player must see this much more video before the
	// round's gap is taken (the gap can only be known once media is back).
	failoverAfterFrames = 50
	failoverRoundLimit  = 60 * time.Second
)

// BenchmarkFailover measures the media gap players of an edge see when the
// origin the edge pulls from is killed. Two `portier relay --role origin`
// processes each get the same ffmpeg test stream (one ffmpeg per origin), a
// `portier relay --role edge` process serves five RTMP players (media/rtmp
// play clients that record the largest inter-arrival gap of video
// messages), and a `portier serve` control plane on SQLite holds the
// directory. Ten times: SIGKILL the origin the edge pulls from, wait for
// two seconds of video after the switch, take the worst gap of the
// players, then restart the killed origin on its addresses, republish to
// it and let the directory list both origins again. Reports the median and
// worst of the ten gaps.
func BenchmarkFailover(b *testing.B) {
	var res failoverResult
	b.Run("edge", func(b *testing.B) {
		if res.Gaps != nil { // the framework may call again with a larger b.N
			return
		}
		res = runFailover(b)
		b.ReportMetric(float64(res.Median.Milliseconds()), "gap-median-ms")
		b.ReportMetric(float64(res.Worst.Milliseconds()), "gap-worst-ms")
		b.ReportMetric(0, "ns/op")
	})
	if res.Gaps != nil {
		fmt.Fprintf(os.Stdout, "\nFailover (SIGKILL of the origin an edge pulls from, %d kills, %d players):\n%s\n",
			len(res.Gaps), failoverPlayers, res.format())
	}
}

type failoverResult struct {
	Gaps          []time.Duration // worst player gap per kill
	Switch        []time.Duration // kill to the edge reporting another upstream
	Median, Worst time.Duration
	Steady        time.Duration // worst gap over 50 frames without a kill
	Backwards     int           // timestamps that went backwards, all players
}

func (r failoverResult) format() string {
	var sb strings.Builder
	ms := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprint(d.Milliseconds()))
		}
		return strings.Join(s, " ")
	}
	fmt.Fprintf(&sb, "  gap per kill (ms):            %s\n", ms(r.Gaps))
	fmt.Fprintf(&sb, "  edge switch per kill (ms):    %s\n", ms(r.Switch))
	fmt.Fprintf(&sb, "  median gap %d ms, worst gap %d ms (without a kill: %d ms), timestamps backwards: %d\n",
		r.Median.Milliseconds(), r.Worst.Milliseconds(), r.Steady.Milliseconds(), r.Backwards)
	return sb.String()
}

func runFailover(b *testing.B) failoverResult {
	ctx, cancel := context.WithTimeout(context.Background(), failoverKills*failoverRoundLimit+2*time.Minute)
	defer cancel()
	cp := startControlPlane(b, "")
	key := cp.createStream(b, "live", "bench")
	origins := []*relayProc{
		startRelayProc(b, cp, "origin-a", "origin"),
		startRelayProc(b, cp, "origin-b", "origin"),
	}
	edge := startRelayProc(b, cp, "edge-1", "edge", "--origins", origins[0].rtmpAddr+","+origins[1].rtmpAddr)
	publish := func(o *relayProc) {
		p := peers.Publish(b, ctx, "rtmp://"+o.rtmpAddr+"/live/bench?key="+key, peers.PublishOpts{})
		if err := p.WaitFrames(ctx, 25); err != nil {
			b.Fatalf("publish to %s: %v", o.name, err)
		}
	}
	for _, o := range origins {
		publish(o)
	}
	waitDirectory(b, ctx, cp, 2)

	players := make([]*gapPlayer, failoverPlayers)
	for i := range players {
		p, err := startGapPlayer(ctx, "rtmp://"+edge.rtmpAddr+"/live", "bench")
		if err != nil {
			b.Fatalf("player %d: %v", i, err)
		}
		b.Cleanup(p.close)
		players[i] = p
	}
	for i, p := range players {
		if err := p.waitVideo(ctx, 50); err != nil {
			b.Fatalf("player %d: %v", i, err)
		}
	}

	var res failoverResult
	// The gap players see without a kill, for comparison (25 fps: 40 ms).
	base := make([]int64, len(players))
	for i, p := range players {
		base[i] = p.resetGap()
	}
	for i, p := range players {
		if err := p.waitVideo(ctx, base[i]+failoverAfterFrames); err != nil {
			b.Fatalf("player %d: %v", i, err)
		}
		res.Steady = max(res.Steady, p.maxGap())
	}
	for round := range failoverKills {
		up := edgeUpstream(b, edge)
		vi := slices.IndexFunc(origins, func(o *relayProc) bool { return o.rtmpAddr == up })
		if vi < 0 {
			b.Fatalf("round %d: the edge pulls from %q, not from one of the origins", round, up)
		}
		victim := origins[vi]
		before := make([]int64, len(players))
		for i, p := range players {
			before[i] = p.resetGap()
		}
		killed := time.Now()
		victim.stop(syscall.SIGKILL)
		deadline := time.Now().Add(failoverRoundLimit / 2)
		for {
			if u := edgeUpstream(b, edge); u != "" && u != victim.rtmpAddr {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("round %d: the edge did not switch away from %s", round, victim.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		res.Switch = append(res.Switch, time.Since(killed))
		var worst time.Duration
		for i, p := range players {
			if err := p.waitVideo(ctx, before[i]+failoverAfterFrames); err != nil {
				b.Fatalf("round %d player %d after the kill: %v", round, i, err)
			}
			worst = max(worst, p.maxGap())
		}
		res.Gaps = append(res.Gaps, worst)
		b.Logf("round %d: killed %s, edge switched after %d ms, worst video gap %d ms",
			round, victim.name, res.Switch[round].Milliseconds(), worst.Milliseconds())

		// Bring the origin back where it was, with its encoder, and let the
		// directory list it again before the next kill.
		origins[vi] = startRelayProcAt(b, cp, victim.name, "origin", victim.rtmpAddr, victim.httpAddr)
		publish(origins[vi])
		waitDirectory(b, ctx, cp, 2)
	}
	for i, p := range players {
		if err := p.failed(); err != nil {
			b.Fatalf("player %d disconnected: %v", i, err)
		}
		res.Backwards += p.backwardsCount()
	}
	sorted := slices.Clone(res.Gaps)
	slices.Sort(sorted)
	res.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		res.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	res.Worst = sorted[len(sorted)-1]
	return res
}

// edgeUpstream returns the origin address the edge pulls live/bench from
// (its /api/v1/streams), or "" when it has none.
func edgeUpstream(tb testing.TB, edge *relayProc) string {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+edge.httpAddr+"/api/v1/streams", nil)
	req.Header.Set("Authorization", "Bearer "+edge.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("edge API: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		Streams []struct {
			Path     string `json:"path"`
			Upstream string `json:"upstream_origin"`
		} `json:"streams"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body); err != nil {
		tb.Fatalf("edge API: %v", err)
	}
	for _, s := range body.Streams {
		if s.Path == "live/bench" {
			return s.Upstream
		}
	}
	return ""
}

// waitDirectory waits until the control plane's directory lists n origins
// for live/bench.
func waitDirectory(tb testing.TB, ctx context.Context, cp *controlPlane, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/internal/v1/directory/live/bench", nil)
		req.Header.Set("Authorization", "Bearer "+cp.ClusterToken)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct {
				Origins []json.RawMessage `json:"origins"`
			}
			if res.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body) == nil {
				got = len(body.Origins)
			}
			res.Body.Close()
			if got == n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("directory lists %d origins for live/bench, want %d", got, n)
}

// gapPlayer plays one stream with the media/rtmp client and records the
// largest inter-arrival gap of video messages since the last reset.
type gapPlayer struct {
	cc   *rtmp.ClientConn
	done chan struct{}

	mu        sync.Mutex
	cond      chan struct{} // closed and replaced on every video message
	videos    int64
	lastAt    time.Time
	gap       time.Duration
	lastDTS   int64
	unwrap    rtmp.TimestampUnwrapper
	haveDTS   bool
	backwards int
	err       error
}

func startGapPlayer(ctx context.Context, url, name string) (*gapPlayer, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cc, err := rtmp.Dial(dctx, url, rtmp.ClientConfig{ReadTimeout: 15 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := cc.Play(dctx, name); err != nil {
		cc.Close()
		return nil, err
	}
	p := &gapPlayer{cc: cc, done: make(chan struct{}), cond: make(chan struct{})}
	go p.run()
	return p, nil
}

func (p *gapPlayer) run() {
	defer close(p.done)
	for {
		msg, err := p.cc.ReadMessage()
		if err != nil {
			p.mu.Lock()
			p.err = err
			close(p.cond)
			p.cond = make(chan struct{})
			p.mu.Unlock()
			return
		}
		if msg.Type != rtmp.TypeVideo {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		if !p.lastAt.IsZero() {
			p.gap = max(p.gap, now.Sub(p.lastAt))
		}
		p.lastAt = now
		dts := p.unwrap.Unwrap(msg.Timestamp)
		if p.haveDTS && dts < p.lastDTS {
			p.backwards++
		}
		p.lastDTS, p.haveDTS = dts, true
		p.videos++
		close(p.cond)
		p.cond = make(chan struct{})
		p.mu.Unlock()
	}
}

// resetGap clears the recorded gap and returns the video messages so far.
func (p *gapPlayer) resetGap() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gap = 0
	return p.videos
}

func (p *gapPlayer) maxGap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gap
}

func (p *gapPlayer) backwardsCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backwards
}

func (p *gapPlayer) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// waitVideo waits until the player has received n video messages in all.
func (p *gapPlayer) waitVideo(ctx context.Context, n int64) error {
	t := time.NewTimer(failoverRoundLimit)
	defer t.Stop()
	for {
		p.mu.Lock()
		got, err, ch := p.videos, p.err, p.cond
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		if err != nil {
			return fmt.Errorf("after %d of %d video messages: %w", got, n, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("after %d of %d video messages: %w", got, n, ctx.Err())
		case <-t.C:
			return fmt.Errorf("only %d of %d video messages within %s", got, n, failoverRoundLimit)
		}
	}
}

func (p *gapPlayer) close() {
	p.cc.Close()
	<-p.done
}
