package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portier/portier/tests/peers"
)

// The fan-out benchmark's stream: one 2 Mbps H.264+AAC publish.
const (
	FanoutVideoBitrate = 1_936_000
	FanoutAudioBitrate = 64_000
)

// Bounds on the environment knobs.
const (
	maxBenchSeconds = 120
	defaultSeconds  = 20
)

// FanoutTarget is one server under test.
type FanoutTarget struct {
	Server     string // name in the table, e.g. "nginx-rtmp 1.2.2"
	PublishURL string // where the ffmpeg publisher sends the stream
	PlayURL    string // what the players play (rtmp://host:port/app/name)
	FLVURL     string // http://… .flv play URL, empty when the server has no HTTP-FLV
	PID        int    // server process whose tree is sampled for CPU and memory
	// PprofURL is http://host:port serving Go's /debug/pprof/ (our
	// servers): see profile.go.
	PprofURL string
}

// FanoutRow is one line of the fan-out table.
type FanoutRow struct {
	Server      string
	N           int
	Connected   int
	KeptUp      int
	Dropped     int
	CPUPerGbit  float64       // server CPU seconds per Gbit delivered to players
	KBPerPlayer float64       // (peak RSS − RSS before players) / N, KB
	WorstLag    time.Duration // LoadResult.WorstLag
	Delivered   float64       // Gbit read by all players over the run
	CPUSeconds  float64
	ExpectedBPS float64 // publisher bits/s in the window
	MedianBPS   float64 // median player bits/s in the window
	ClientCPU   float64 // load client CPU seconds / run seconds (1.0 = one core)
	Errors      []string
	// The load run's measurement window (LoadResult.WindowStart/End), for
	// a caller that samples something else over the same span.
	WindowStart, WindowEnd time.Time
	ConnectPhase           time.Duration // LoadResult.ConnectPhase
}

// BenchSizes reads PORTIER_BENCH_N (comma-separated player counts, each
// 1..MaxPlayers); default 10,100.
func BenchSizes() ([]int, error) { return benchSizesFrom("PORTIER_BENCH_N", []int{10, 100}) }

// benchSizesFrom reads player counts from the environment variable env
// (comma-separated, each 1..MaxPlayers); def when it is unset.
func benchSizesFrom(env string, def []int) ([]int, error) {
	v := os.Getenv(env)
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > MaxPlayers {
			return nil, fmt.Errorf("%s=%q: %q is not a player count in 1..%d", env, v, f, MaxPlayers)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchSizesAndDuration is BenchSizes and BenchDuration for a benchmark,
// which fails on a bad value.
func benchSizesAndDuration(tb testing.TB) ([]int, time.Duration) {
	tb.Helper()
	sizes, err := BenchSizes()
	if err != nil {
		tb.Fatal(err)
	}
	dur, err := BenchDuration()
	if err != nil {
		tb.Fatal(err)
	}
	return sizes, dur
}

// BenchDuration reads PORTIER_BENCH_SECONDS (5..120); default 20.
func BenchDuration() (time.Duration, error) {
	v := os.Getenv("PORTIER_BENCH_SECONDS")
	if v == "" {
		return defaultSeconds * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 5 || n > maxBenchSeconds {
		return 0, fmt.Errorf("PORTIER_BENCH_SECONDS=%q: want whole seconds in 5..%d", v, maxBenchSeconds)
	}
	return time.Duration(n) * time.Second, nil
}

// RunFanout publishes the 2 Mbps test stream to target, plays it with n
// players for dur while sampling the server's process tree, and returns the
// table row. The publisher is stopped before it returns.
func RunFanout(tb testing.TB, ctx context.Context, target FanoutTarget, n int, dur time.Duration) (FanoutRow, error) {
	tb.Helper()
	row := FanoutRow{Server: target.Server, N: n}
	pubCtx, cancel := context.WithTimeout(ctx, dur+2*time.Minute)
	defer cancel()
	pub := peers.Publish(tb, pubCtx, target.PublishURL, peers.PublishOpts{
		VideoBitrate: FanoutVideoBitrate, AudioBitrate: FanoutAudioBitrate,
	})
	defer pub.Stop()
	if err := pub.WaitFrames(pubCtx, 50); err != nil {
		return row, fmt.Errorf("publisher: %w", err)
	}
	// Wait until the server serves the stream (MediaMTX takes ~2 s).
	if _, err := peers.ProbeUntil(tb, pubCtx, target.PlayURL); err != nil {
		return row, fmt.Errorf("stream not playable: %w", err)
	}
	sampler, err := StartProcSampler(target.PID, 250*time.Millisecond)
	if err != nil {
		return row, fmt.Errorf("sample server: %w", err)
	}
	var prof *profiler
	var profErr error
	res, loadErr := RunLoad(pubCtx, LoadOpts{
		URL: target.PlayURL, Players: n, Duration: dur, ExpectedBitrate: pub.OutputBitrate,
		OnWindow: func(window time.Duration) {
			prof, profErr = startProfiler(pubCtx, target.PprofURL, target.Server, n, max(1, int(window.Seconds())))
		},
	})
	st, err := sampler.Stop()
	switch {
	case profErr != nil:
		tb.Logf("%s N=%d: no profiles: %v", target.Server, n, profErr)
	case prof != nil:
		fmt.Fprintf(os.Stdout, "\nProfiles of %s at N=%d:\n%s", target.Server, n, prof.finish(pubCtx))
	}
	row.ConnectPhase = res.ConnectPhase
	if loadErr != nil {
		return row, fmt.Errorf("load: %w", loadErr)
	}
	if err != nil {
		return row, fmt.Errorf("sample server: %w", err)
	}
	if pub.Exited() {
		return row, fmt.Errorf("publisher exited during the run (code %d)", pub.ExitCode())
	}
	row.Connected, row.KeptUp, row.Dropped = res.Connected, res.KeptUp, res.Dropped
	row.WorstLag = res.WorstLag
	row.Delivered = float64(res.SocketBytes) * 8 / 1e9
	row.CPUSeconds = st.CPUSeconds
	if row.Delivered > 0 {
		row.CPUPerGbit = st.CPUSeconds / row.Delivered
	}
	row.KBPerPlayer = float64(st.PeakRSSKB-st.BaselineRSSKB) / float64(n)
	row.ExpectedBPS, row.MedianBPS = res.ExpectedBitrate, res.MedianBitrate
	row.Errors = res.Errors
	row.ClientCPU = res.ClientCPUSeconds / dur.Seconds()
	row.WindowStart, row.WindowEnd = res.WindowStart, res.WindowEnd
	return row, nil
}

// FanoutServer starts one server for the fan-out benchmark; it is called
// once per N and must tie the server's lifetime to tb.
type FanoutServer struct {
	Name  string
	Start func(tb testing.TB) FanoutTarget
}

var (
	fanoutMu      sync.Mutex
	fanoutServers []FanoutServer
	fanoutSkips   []string
)

// RegisterFanoutServer adds a server to BenchmarkRTMPFanoutPeers, so that
// it runs in the same invocation and lands in the same table (call it from
// an init function in a _test.go file). The server should run as its own
// process: FanoutTarget.PID's process tree is what is measured.
func RegisterFanoutServer(s FanoutServer) {
	fanoutMu.Lock()
	defer fanoutMu.Unlock()
	fanoutServers = append(fanoutServers, s)
}

// RegisterFanoutSkip records that a server was left out of the fan-out
// benchmark and how to include it (e.g. an environment variable that names
// its binary); BenchmarkRTMPFanoutPeers prints each note once, under its
// table.
func RegisterFanoutSkip(note string) {
	fanoutMu.Lock()
	defer fanoutMu.Unlock()
	fanoutSkips = append(fanoutSkips, note)
}

// FanoutSkips lists the RegisterFanoutSkip notes in registration order.
func FanoutSkips() []string {
	fanoutMu.Lock()
	defer fanoutMu.Unlock()
	return append([]string(nil), fanoutSkips...)
}

// FanoutServers lists the registered servers in registration order.
func FanoutServers() []FanoutServer {
	fanoutMu.Lock()
	defer fanoutMu.Unlock()
	return append([]FanoutServer(nil), fanoutServers...)
}

// FormatFanoutTable renders rows as an aligned text table, sorted by N and
// server. "CPU vs nginx" is the row's CPU per Gbit divided by nginx-rtmp's
// at the same N (the target is at most 1).
func FormatFanoutTable(rows []FanoutRow) string {
	rows = append([]FanoutRow(nil), rows...)
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].N != rows[j].N {
			return rows[i].N < rows[j].N
		}
		return rows[i].Server < rows[j].Server
	})
	nginx := map[int]float64{}
	for _, r := range rows {
		if strings.HasPrefix(r.Server, "nginx-rtmp") && r.CPUPerGbit > 0 {
			nginx[r.N] = r.CPUPerGbit
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "server\tN\tconnected\tkept-up\tdropped\tCPU s/Gbit\tCPU vs nginx\tpeak KB/player\tworst lag ms\tpub kbit/s\tmedian player kbit/s\tclient cores\t")
	for _, r := range rows {
		ratio := "-"
		if base := nginx[r.N]; base > 0 {
			ratio = fmt.Sprintf("%.2f", r.CPUPerGbit/base)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%.3f\t%s\t%.1f\t%d\t%.0f\t%.0f\t%.2f\t\n", r.Server, r.N, r.Connected, r.KeptUp,
			r.Dropped, r.CPUPerGbit, ratio, r.KBPerPlayer, r.WorstLag.Milliseconds(), r.ExpectedBPS/1000, r.MedianBPS/1000, r.ClientCPU)
	}
	w.Flush()
	return b.String()
}
