package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// The knee's schedule and bounds.
var kneeSchedule = []int{250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000}

const (
	defaultKneeMax     = MaxPlayers
	defaultKneeSeconds = 10
	kneeServerBudget   = 12 * time.Minute // all steps of one server
	kneeStepOverhead   = 30 * time.Second // start, publish, probe, stop: for the budget
	kneeMaxLag         = time.Second      // worst lag a held step may show
	kneeRefineMin      = 100              // no refinement step when held and failed are closer
	kneeRefineRound    = 50
	kneeSampleEvery    = 500 * time.Millisecond
	// A process using this share of its one core is taken as saturated,
	// and a core this busy (whoever uses it) as full.
	kneeSaturatedCores = 0.9
	kneeFullCore       = 0.97
	// Other processes (the publisher included, on the client's core) using
	// this much of a full core make it shared rather than the knee's.
	kneeOtherProcs = 0.25
)

// kneeConfig is what every step of every server shares.
type kneeConfig struct {
	maxN      int
	window    time.Duration // measurement window of each step
	clientCPU int           // this process and the publisher
	serverCPU int           // the server's process tree
}

// kneeStep is one (server, N) run.
type kneeStep struct {
	N    int
	Row  FanoutRow
	Use  CoreUse
	Err  error
	Held bool
	Off  int     // server threads found off the server's core after the run
	Load float64 // 1-minute load average at the step's end
}

// kneeResult is one server's knee.
type kneeResult struct {
	Server  string
	Steps   []kneeStep // in the order run
	Stopped string     // why the schedule ended early, if it did
}

// BenchmarkFanoutKnee finds the largest number of 2 Mbit/s RTMP players
// each registered server (RegisterFanoutServer: Portier's relay,
// nginx-rtmp, MediaMTX and any other) holds on one core. The server's
// process tree, every thread, is pinned to the second CPU this process may
// use; this process (the load client, GOMAXPROCS 1), the ffmpeg publisher
// and anything else the benchmark started go to the first. N rises over
// 250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000 (up to
// PORTIER_BENCH_KNEE_MAX, default and at most MaxPlayers, 5000) with one
// refinement step between the last held and the first failed N; each step
// starts the server fresh and measures PORTIER_BENCH_KNEE_SECONDS (5..120, default 10) after the
// last player connected. A step holds when every player kept up (≥ 95 % of
// the publisher's bitrate) and the worst lag stayed under 1 s; a step that
// does not runs once more, and the first N that fails twice ends the
// schedule, as does a 12-minute budget per server.
// The table names what limited each knee: the server's core, the load
// client's core (then the knee is the client's, not the server's), a core
// shared with other processes (a busy machine: not a clean knee), or no
// core. Run one server with -bench 'FanoutKnee/nginx-rtmp'.
func BenchmarkFanoutKnee(b *testing.B) {
	cfg, err := kneeConfigFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	var results []kneeResult
	for _, srv := range FanoutServers() {
		b.Run(srv.Name, func(b *testing.B) {
			for _, r := range results {
				if r.Server == srv.Name { // the framework may call again with a larger b.N
					return
				}
			}
			results = append(results, runKnee(b, srv, cfg))
		})
	}
	if len(results) > 0 {
		fmt.Fprintf(os.Stdout, "\nRTMP fan-out knee, one %d kbit/s stream, server on cpu %d, load client and publisher on cpu %d, %s window per step:\n%s\n%s\n",
			(FanoutVideoBitrate+FanoutAudioBitrate)/1000, cfg.serverCPU, cfg.clientCPU, cfg.window,
			formatKneeTable(results, cfg), formatKneeSteps(results, cfg))
	}
}

func kneeConfigFromEnv() (kneeConfig, error) {
	cfg := kneeConfig{maxN: defaultKneeMax, window: defaultKneeSeconds * time.Second}
	if v := os.Getenv("PORTIER_BENCH_KNEE_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPlayers {
			return cfg, fmt.Errorf("PORTIER_BENCH_KNEE_MAX=%q: want a player count in 1..%d", v, MaxPlayers)
		}
		cfg.maxN = n
	}
	if v := os.Getenv("PORTIER_BENCH_KNEE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > maxBenchSeconds {
			return cfg, fmt.Errorf("PORTIER_BENCH_KNEE_SECONDS=%q: want whole seconds in 5..%d", v, maxBenchSeconds)
		}
		cfg.window = time.Duration(n) * time.Second
	}
	cpus, err := AllowedCPUs()
	if err != nil {
		return cfg, err
	}
	if len(cpus) < 2 {
		return cfg, fmt.Errorf("the knee needs two CPUs (one for the server, one for the load client); this process may use %v", cpus)
	}
	cfg.clientCPU, cfg.serverCPU = cpus[0], cpus[1]
	return cfg, nil
}

// kneeNs is the schedule up to maxN, ending at maxN.
func kneeNs(maxN int) []int {
	var out []int
	for _, n := range kneeSchedule {
		if n <= maxN {
			out = append(out, n)
		}
	}
	if len(out) == 0 || out[len(out)-1] < maxN {
		out = append(out, maxN)
	}
	return out
}

// kneeRefine is the one refinement step between the last held N and the
// first failed one (0 when there is none worth running).
func kneeRefine(held, failed int) int {
	if failed == 0 || failed-held < kneeRefineMin {
		return 0
	}
	mid := (held + failed) / 2 / kneeRefineRound * kneeRefineRound
	if mid <= held || mid >= failed {
		return 0
	}
	return mid
}

// kneeRunLength is a step's whole load run: connects (allowed 5 s and 6 ms
// per player; a fast connect phase lengthens the window), the load client's
// warm-up, the window and its end margin.
func kneeRunLength(n int, window time.Duration) time.Duration {
	return 5*time.Second + time.Duration(n)*6*time.Millisecond + defaultWarmup + window + windowEndMargin
}

func runKnee(b *testing.B, srv FanoutServer, cfg kneeConfig) kneeResult {
	res := kneeResult{Server: srv.Name}
	start := time.Now()
	fits := func(n int) bool {
		if time.Since(start)+kneeRunLength(n, cfg.window)+kneeStepOverhead > kneeServerBudget {
			res.Stopped = fmt.Sprintf("budget of %s reached before N=%d", kneeServerBudget, n)
			return false
		}
		return true
	}
	// A failed step runs once more (the machine may be shared: one
	// failure is weak evidence); N fails when both runs do.
	run := func(n int) bool {
		st := runKneeStep(b, srv, n, cfg, fmt.Sprintf("N=%d", n))
		res.Steps = append(res.Steps, st)
		if st.Held || !fits(n) {
			return st.Held
		}
		// Named by hand: the framework's "#01" would reach file paths
		// (t.TempDir), where a database URL takes it for a fragment.
		st = runKneeStep(b, srv, n, cfg, fmt.Sprintf("N=%d_again", n))
		res.Steps = append(res.Steps, st)
		return st.Held
	}
	for _, n := range kneeNs(cfg.maxN) {
		if !fits(n) || !run(n) {
			break
		}
	}
	held, failed := res.knee()
	if mid := kneeRefine(held.N, failed.N); mid > 0 && fits(mid) {
		run(mid)
	}
	if len(res.Steps) > 0 && res.Steps[0].Err != nil && res.Steps[0].N == kneeNs(cfg.maxN)[0] {
		b.Errorf("%s: the first step failed to run: %v", srv.Name, res.Steps[0].Err)
	}
	return res
}

// knee returns the largest held step and the last run of the smallest N
// no run held (zero steps when there is none).
func (r kneeResult) knee() (held, failed kneeStep) {
	heldN := map[int]bool{}
	for _, s := range r.Steps {
		if s.Held {
			heldN[s.N] = true
			if s.N > held.N {
				held = s
			}
		}
	}
	for _, s := range r.Steps {
		if !heldN[s.N] && (failed.N == 0 || s.N <= failed.N) {
			failed = s
		}
	}
	return held, failed
}

// runKneeStep runs one step as a sub-benchmark, so the server it starts is
// stopped when the step ends.
func runKneeStep(b *testing.B, srv FanoutServer, n int, cfg kneeConfig, name string) kneeStep {
	st := kneeStep{N: n, Err: errors.New("the step did not finish (see its log)")}
	ran := false
	b.Run(name, func(b *testing.B) {
		if ran {
			return
		}
		ran = true
		target := srv.Start(b)
		st.Row, st.Use, st.Off, st.Err = runPinned(b, target, n, cfg)
		st.Held = st.Err == nil && st.Row.KeptUp == n && st.Row.WorstLag < kneeMaxLag
		st.Load = loadAverage()
		b.ReportMetric(float64(st.Row.KeptUp), "kept-up")
		b.ReportMetric(st.Use.ServerCores, "server-cores")
		b.ReportMetric(st.Use.ClientCores, "client-cores")
		b.ReportMetric(float64(st.Row.WorstLag.Milliseconds()), "lag-ms")
		b.ReportMetric(0, "ns/op")
		if st.Err != nil {
			b.Logf("%s N=%d: %v", srv.Name, n, st.Err)
		} else if len(st.Row.Errors) > 0 {
			b.Logf("%s N=%d player errors: %s", srv.Name, n, strings.Join(st.Row.Errors, "; "))
		}
	})
	return st
}

// runPinned pins target's process tree to the server CPU and this process
// (with whatever else it started) to the client CPU, runs the fan-out and
// returns the row, the cores used in its window and how many server
// threads were off the server CPU at the end. This process's affinity and
// GOMAXPROCS are restored before it returns.
func runPinned(b *testing.B, target FanoutTarget, n int, cfg kneeConfig) (FanoutRow, CoreUse, int, error) {
	serverPIDs, err := PinTree(target.PID, []int{cfg.serverCPU}, nil)
	if err != nil {
		return FanoutRow{}, CoreUse{}, 0, fmt.Errorf("pin server: %w", err)
	}
	skip := map[int]bool{}
	for _, p := range serverPIDs {
		skip[p] = true
	}
	orig, err := AllowedCPUs()
	if err != nil {
		return FanoutRow{}, CoreUse{}, 0, err
	}
	// One P for one core; the ffmpeg publisher started below inherits the
	// affinity of the thread that forks it.
	runtime.GOMAXPROCS(1)
	defer runtime.SetDefaultGOMAXPROCS()
	if _, err := PinTree(os.Getpid(), []int{cfg.clientCPU}, skip); err != nil {
		return FanoutRow{}, CoreUse{}, 0, fmt.Errorf("pin load client: %w", err)
	}
	defer func() {
		if _, err := PinTree(os.Getpid(), orig, skip); err != nil {
			b.Errorf("restore the load client's cpus %v: %v", orig, err)
		}
	}()
	cs, err := StartCoreSampler(target.PID, kneeSampleEvery)
	if err != nil {
		return FanoutRow{}, CoreUse{}, 0, fmt.Errorf("sample cores: %w", err)
	}
	runLen := kneeRunLength(n, cfg.window)
	ctx, cancel := context.WithTimeout(context.Background(), runLen+3*time.Minute)
	defer cancel()
	t0 := time.Now()
	row, err := RunFanout(b, ctx, target, n, runLen)
	t1 := time.Now()
	cs.Stop()
	off, offErr := ThreadsOffCPUs(target.PID, []int{cfg.serverCPU})
	if err != nil {
		// No window: the cores over the whole run still show who was busy
		// (a load client at its core's limit connects slowly).
		use, _ := cs.Between(t0, t1)
		return row, use, off, err
	}
	if offErr != nil {
		return row, CoreUse{}, off, fmt.Errorf("check server pin: %w", offErr)
	}
	use, err := cs.Between(row.WindowStart, row.WindowEnd)
	return row, use, off, err
}

// kneeLimit says what stopped a server at step s (its first failed step):
// every process at its core's limit and every full core, with who filled it.
func kneeLimit(s kneeStep, cfg kneeConfig) string {
	if s.N == 0 {
		return fmt.Sprintf("nothing: every step held (PORTIER_BENCH_KNEE_MAX=%d)", cfg.maxN)
	}
	u := s.Use
	var why []string
	if s.Err != nil { // the cores are then the whole run's
		why = append(why, fmt.Sprintf("error: %v", s.Err))
	}
	if u.ServerCores >= kneeSaturatedCores {
		why = append(why, fmt.Sprintf("server's core (server %.2f cores)", u.ServerCores))
	}
	if u.ClientCores >= kneeSaturatedCores {
		why = append(why, fmt.Sprintf("load client's core (client %.2f cores): the knee is the client's", u.ClientCores))
	}
	full := func(who string, cpu int, own float64) {
		if own >= kneeSaturatedCores || u.Busy[cpu] < kneeFullCore {
			return
		}
		if o := u.Others(cpu, own); o >= kneeOtherProcs {
			why = append(why, fmt.Sprintf("cpu %d full, shared: %s %.2f, other processes %.2f, irq %.2f, steal %.2f (not a clean knee)",
				cpu, who, own, o, u.IRQ[cpu], u.Steal[cpu]))
			return
		}
		why = append(why, fmt.Sprintf("cpu %d full: %s %.2f, irq %.2f", cpu, who, own, u.IRQ[cpu]))
	}
	full("server", cfg.serverCPU, u.ServerCores)
	full("client", cfg.clientCPU, u.ClientCores)
	if s.Err != nil {
		why = append(why, fmt.Sprintf("over the run: server %.2f, client %.2f cores", u.ServerCores, u.ClientCores))
	} else if len(why) == 0 {
		return fmt.Sprintf("no core full (server %.2f, client %.2f cores): kept up %d/%d, worst lag %d ms",
			u.ServerCores, u.ClientCores, s.Row.KeptUp, s.N, s.Row.WorstLag.Milliseconds())
	}
	return strings.Join(why, "; ")
}

// formatKneeTable is one line per server: its knee and what limited it.
func formatKneeTable(results []kneeResult, cfg kneeConfig) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "server\theld N\tfirst failed N\tserver cores\tclient cores\tworst lag ms\tlimited by\t")
	for _, r := range results {
		held, failed := r.knee()
		name := r.Server
		if held.Row.Server != "" {
			name = held.Row.Server
		}
		failedN, limit := "-", kneeLimit(failed, cfg)
		if failed.N > 0 {
			failedN = strconv.Itoa(failed.N)
		} else if r.Stopped != "" {
			limit = r.Stopped
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%.2f\t%.2f\t%d\t%s\t\n", name, held.N, failedN,
			held.Use.ServerCores, held.Use.ClientCores, held.Row.WorstLag.Milliseconds(), limit)
	}
	w.Flush()
	return sb.String()
}

// loadAverage is the 1-minute load average (0 when unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// formatKneeSteps is one line per step, in the order run: who used each
// core in the window ("others" are other processes, the publisher included
// on the client's core) and the load average at its end (the machine may be
// shared).
func formatKneeSteps(results []kneeResult, cfg kneeConfig) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "server\tN\tconnect s\tconnected\tkept-up\tworst lag ms\tmedian kbit/s\t"+
		"server cores\tcpu %d irq\tcpu %d others\tclient cores\tcpu %d irq\tcpu %d others\tsteal\tthreads off\tload\tresult\t\n",
		cfg.serverCPU, cfg.serverCPU, cfg.clientCPU, cfg.clientCPU)
	for _, r := range results {
		for _, s := range r.Steps {
			result := "held"
			if !s.Held {
				result = "failed"
				if s.Err != nil {
					result = "error"
				}
			}
			u := s.Use
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\t%s\t\n", r.Server, s.N,
				s.Row.ConnectPhase.Seconds(), s.Row.Connected, s.Row.KeptUp, s.Row.WorstLag.Milliseconds(), s.Row.MedianBPS/1000,
				u.ServerCores, u.IRQ[cfg.serverCPU], u.Others(cfg.serverCPU, u.ServerCores),
				u.ClientCores, u.IRQ[cfg.clientCPU], u.Others(cfg.clientCPU, u.ClientCores),
				u.Steal[cfg.serverCPU]+u.Steal[cfg.clientCPU], s.Off, s.Load, result)
		}
	}
	w.Flush()
	return sb.String()
}
