package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portier/portier/tests/peers"
)

// rtspFanoutServers are the servers of BenchmarkRTSPFanout, each started
// fresh for every N and measured as its own process tree: a `portier relay
// --role origin` with RTSP over UDP (its control plane is another process,
// not measured), and MediaMTX.
func rtspFanoutServers() []FanoutServer {
	return []FanoutServer{
		{Name: "portier", Start: func(tb testing.TB) FanoutTarget {
			cp := startControlPlane(tb, "")
			key := cp.createStream(tb, "live", "bench")
			rtsp := peers.FreeAddr(tb)
			o := startRelayProc(tb, cp, "origin-1", "origin", "--rtsp-addr", rtsp, "--rtsp-udp-addr", "127.0.0.1:0")
			return FanoutTarget{Server: "portier relay", PID: o.PID(),
				PublishURL: "rtmp://" + o.rtmpAddr + "/live/bench?key=" + key, PlayURL: "rtsp://" + rtsp + "/live/bench"}
		}},
		{Name: "mediamtx", Start: func(tb testing.TB) FanoutTarget {
			m := peers.StartMediaMTX(tb, peers.MediaMTXOpts{LogLevel: "warn"})
			return FanoutTarget{Server: "mediamtx " + string(m.Version), PID: m.Proc.PID(),
				PublishURL: m.RTMPURL("live/bench"), PlayURL: m.RTSPURL("live/bench")}
		}},
	}
}

// RTSPFanoutRow is one line of the RTSP fan-out table.
type RTSPFanoutRow struct {
	Server                     string
	N, Connected, KeptUp, Drop int
	LossPct                    float64 // packets missing in the window, % of all players' packets
	CPUSeconds, Delivered      float64 // server CPU s; Gbit of RTP received by the players
	CPUPerGbit                 float64
	KBPerPlayer                float64
	ExpectedBPS, MedianBPS     float64
	ClientCores                float64
	Errors                     []string
}

// BenchmarkRTSPFanout plays the fan-out benchmark's 2 Mbps H.264+AAC stream
// (published over RTMP) to N RTSP players over UDP on our relay and on
// MediaMTX, and reports the server's CPU seconds per Gbit of RTP delivered.
// The players are gortsplib clients in this process (RunRTSPLoad). N comes
// from PORTIER_BENCH_RTSP_N (default 50,200), the run length from
// PORTIER_BENCH_SECONDS (default 20); select a server with
// -bench 'RTSPFanout/mediamtx'.
func BenchmarkRTSPFanout(b *testing.B) {
	sizes, err := benchSizesFrom("PORTIER_BENCH_RTSP_N", []int{50, 200})
	if err != nil {
		b.Fatal(err)
	}
	dur, err := BenchDuration()
	if err != nil {
		b.Fatal(err)
	}
	rows := map[string]RTSPFanoutRow{}
	for _, srv := range rtspFanoutServers() {
		for _, n := range sizes {
			key := fmt.Sprintf("%s/N=%d", srv.Name, n)
			b.Run(key, func(b *testing.B) {
				if _, done := rows[key]; done { // the framework may call again with a larger b.N
					return
				}
				target := srv.Start(b)
				ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
				defer cancel()
				row, err := runRTSPFanout(b, ctx, target, n, dur)
				if err != nil {
					b.Fatalf("%s N=%d: %v", srv.Name, n, err)
				}
				if len(row.Errors) > 0 {
					b.Logf("%s N=%d player errors: %s", srv.Name, n, strings.Join(row.Errors, "; "))
				}
				b.ReportMetric(float64(row.Connected), "connected")
				b.ReportMetric(float64(row.KeptUp), "kept-up")
				b.ReportMetric(row.CPUPerGbit, "cpu-s/Gbit")
				b.ReportMetric(row.LossPct, "loss-%")
				b.ReportMetric(0, "ns/op") // one fixed-length run: time per op says nothing
				rows[key] = row
			})
		}
	}
	out := make([]RTSPFanoutRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, r)
	}
	fmt.Fprintf(os.Stdout, "\nRTSP/UDP fan-out, one %d kbit/s stream published over RTMP, %s per run:\n%s\n",
		(FanoutVideoBitrate+FanoutAudioBitrate)/1000, dur, formatRTSPFanoutTable(out))
}

// runRTSPFanout publishes the test stream to target, plays it with n RTSP
// UDP players for dur while sampling the server's process tree.
func runRTSPFanout(tb testing.TB, ctx context.Context, target FanoutTarget, n int, dur time.Duration) (RTSPFanoutRow, error) {
	tb.Helper()
	row := RTSPFanoutRow{Server: target.Server, N: n}
	pub := peers.Publish(tb, ctx, target.PublishURL, peers.PublishOpts{
		VideoBitrate: FanoutVideoBitrate, AudioBitrate: FanoutAudioBitrate,
	})
	defer pub.Stop()
	if err := pub.WaitFrames(ctx, 50); err != nil {
		return row, fmt.Errorf("publisher: %w", err)
	}
	if _, err := peers.ProbeUntil(tb, ctx, target.PlayURL); err != nil {
		return row, fmt.Errorf("stream not playable over RTSP: %w", err)
	}
	sampler, err := StartProcSampler(target.PID, 250*time.Millisecond)
	if err != nil {
		return row, fmt.Errorf("sample server: %w", err)
	}
	res, loadErr := RunRTSPLoad(ctx, RTSPLoadOpts{URL: target.PlayURL, Players: n, Duration: dur, ExpectedBitrate: pub.OutputBitrate})
	st, err := sampler.Stop()
	if loadErr != nil {
		return row, fmt.Errorf("load: %w", loadErr)
	}
	if err != nil {
		return row, fmt.Errorf("sample server: %w", err)
	}
	if pub.Exited() {
		return row, fmt.Errorf("publisher exited during the run (code %d)", pub.ExitCode())
	}
	row.Connected, row.KeptUp, row.Drop = res.Connected, res.KeptUp, res.Dropped
	if all := res.WindowPackets + res.WindowLost; all > 0 {
		row.LossPct = 100 * float64(res.WindowLost) / float64(all)
	}
	row.CPUSeconds, row.Delivered = st.CPUSeconds, float64(res.Bytes)*8/1e9
	if row.Delivered > 0 {
		row.CPUPerGbit = row.CPUSeconds / row.Delivered
	}
	row.KBPerPlayer = float64(st.PeakRSSKB-st.BaselineRSSKB) / float64(n)
	row.ExpectedBPS, row.MedianBPS = res.ExpectedBitrate, res.MedianBitrate
	row.ClientCores = res.ClientCPUSeconds / dur.Seconds()
	row.Errors = res.Errors
	return row, nil
}

// formatRTSPFanoutTable renders rows sorted by N and server; "CPU vs
// MediaMTX" is the row's CPU per Gbit over MediaMTX's at the same N.
func formatRTSPFanoutTable(rows []RTSPFanoutRow) string {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].N != rows[j].N {
			return rows[i].N < rows[j].N
		}
		return rows[i].Server < rows[j].Server
	})
	ref := map[int]float64{}
	for _, r := range rows {
		if strings.HasPrefix(r.Server, "mediamtx") && r.CPUPerGbit > 0 {
			ref[r.N] = r.CPUPerGbit
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "server\tN\tconnected\tkept-up\tdropped\tloss %\tCPU s\tGbit delivered\tCPU s/Gbit\tCPU vs MediaMTX\tpeak KB/player\tpub kbit/s\tmedian player kbit/s\tclient cores\t")
	for _, r := range rows {
		ratio := "-"
		if base := ref[r.N]; base > 0 {
			ratio = fmt.Sprintf("%.2f", r.CPUPerGbit/base)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%.2f\t%.1f\t%.2f\t%.2f\t%s\t%.1f\t%.0f\t%.0f\t%.2f\t\n", r.Server, r.N, r.Connected, r.KeptUp, r.Drop,
			r.LossPct, r.CPUSeconds, r.Delivered, r.CPUPerGbit, ratio, r.KBPerPlayer, r.ExpectedBPS/1000, r.MedianBPS/1000, r.ClientCores)
	}
	w.Flush()
	return b.String()
}
