package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// The reference servers of the fan-out benchmark, each started fresh for
// every N. Our relay registers itself the same way from its own file.
func init() {
	RegisterFanoutServer(FanoutServer{Name: "nginx-rtmp", Start: func(tb testing.TB) FanoutTarget {
		// Production shape: a master and one worker (the machine has two
		// cores, one of which the load client needs).
		n := peers.NginxRTMP(tb, peers.NginxOpts{MasterProcess: true, Workers: 1, LogLevel: "warn"})
		url := n.RTMPURL("live", "bench")
		return FanoutTarget{Server: "nginx-rtmp", PublishURL: url, PlayURL: url, PID: n.Proc.PID()}
	}})
	RegisterFanoutServer(FanoutServer{Name: "mediamtx", Start: func(tb testing.TB) FanoutTarget {
		m := peers.StartMediaMTX(tb, peers.MediaMTXOpts{LogLevel: "warn"})
		url := m.RTMPURL("live/bench")
		return FanoutTarget{Server: "mediamtx " + string(m.Version), PublishURL: url, PlayURL: url, PID: m.Proc.PID()}
	}})
	registerSRS()
}

// registerSRS adds SRS when PORTIER_BENCH_SRS names its binary (SRS is
// built from source, see docs/benchmarks.md): "srs" with SRS's default
// merged write (350 ms), and with PORTIER_BENCH_SRS_LOWLAT=1 also
// "srs-lowlat" with merged write off, to compare its CPU at nginx-rtmp's
// latency.
func registerSRS() {
	if os.Getenv(peers.SRSBinaryEnv) == "" {
		RegisterFanoutSkip(fmt.Sprintf("srs skipped: set %s to an SRS binary (trunk/objs/srs) to include it, "+
			"and PORTIER_BENCH_SRS_LOWLAT=1 to add srs-lowlat", peers.SRSBinaryEnv))
		return
	}
	start := func(name string, low bool) FanoutServer {
		return FanoutServer{Name: name, Start: func(tb testing.TB) FanoutTarget {
			s := peers.StartSRS(tb, peers.SRSOpts{LowLatency: low})
			return FanoutTarget{Server: name + " " + s.Version, PublishURL: s.RTMPURL("live", "bench"),
				PlayURL: s.RTMPURL("live", "bench"), FLVURL: s.HTTPFLVURL("live", "bench"), PID: s.Proc.PID()}
		}}
	}
	RegisterFanoutServer(start("srs", false))
	if os.Getenv("PORTIER_BENCH_SRS_LOWLAT") == "1" {
		RegisterFanoutServer(start("srs-lowlat", true))
	}
}

// BenchmarkRTMPFanoutPeers plays one 2 Mbps H.264+AAC stream to N RTMP
// players on nginx-rtmp, MediaMTX, SRS (when PORTIER_BENCH_SRS is set) and
// every other RegisterFanoutServer server, with the benchmark's own load
// client. Select servers with -bench 'RTMPFanoutPeers/nginx-rtmp' and so on.
// N comes from PORTIER_BENCH_N (default 10,100; e.g. 10,100,300,1000), the
// run length from PORTIER_BENCH_SECONDS (default 20). Each (server, N) runs
// once whatever b.N is; the table is printed at the end.
func BenchmarkRTMPFanoutPeers(b *testing.B) {
	sizes, dur := benchSizesAndDuration(b)
	out, _ := fanoutMatrix(b, sizes, dur, nil)
	fmt.Fprintf(os.Stdout, "\nRTMP fan-out, one %d kbit/s stream, %s per run:\n%s\n",
		(FanoutVideoBitrate+FanoutAudioBitrate)/1000, dur, FormatFanoutTable(out))
	// On stdout beside the table: a parent benchmark's b.Log is not shown.
	for _, note := range FanoutSkips() {
		fmt.Fprintln(os.Stdout, note)
	}
}

// runFanoutCase measures one (server, N) case of a fan-out benchmark with
// RunFanout and reports its metrics; it fails b on an error.
// fanoutMatrix runs every registered server at every size once, as
// sub-benchmarks SERVER/N=n, and returns the rows. play, when set, turns a
// started server's target into the one to play, or reports false when the
// server cannot serve it: the sub-benchmark is skipped, and so are the
// server's later sizes without starting it again (they are in skipped).
func fanoutMatrix(b *testing.B, sizes []int, dur time.Duration, play func(FanoutTarget) (FanoutTarget, bool)) (rows []FanoutRow, skipped map[string]bool) {
	var mu sync.Mutex
	done := map[string]FanoutRow{}
	skipped = map[string]bool{}
	for _, srv := range FanoutServers() {
		for _, n := range sizes {
			key := fmt.Sprintf("%s/N=%d", srv.Name, n)
			b.Run(key, func(b *testing.B) {
				mu.Lock()
				_, ran := done[key]
				skip := skipped[srv.Name]
				mu.Unlock()
				if ran { // the framework may call again with a larger b.N
					return
				}
				if skip {
					b.Skip("not served")
				}
				target := srv.Start(b)
				if play != nil {
					var ok bool
					if target, ok = play(target); !ok {
						mu.Lock()
						skipped[srv.Name] = true
						mu.Unlock()
						b.Skip("not served")
					}
				}
				row := runFanoutCase(b, srv.Name, target, n, dur)
				mu.Lock()
				done[key] = row
				mu.Unlock()
			})
		}
	}
	for _, r := range done {
		rows = append(rows, r)
	}
	return rows, skipped
}

func runFanoutCase(b *testing.B, name string, target FanoutTarget, n int, dur time.Duration) FanoutRow {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
	defer cancel()
	row, err := RunFanout(b, ctx, target, n, dur)
	if err != nil {
		b.Fatalf("%s N=%d: %v", name, n, err)
	}
	if len(row.Errors) > 0 {
		b.Logf("%s N=%d player errors: %s", name, n, strings.Join(row.Errors, "; "))
	}
	b.ReportMetric(float64(row.Connected), "connected")
	b.ReportMetric(float64(row.KeptUp), "kept-up")
	b.ReportMetric(row.CPUPerGbit, "cpu-s/Gbit")
	b.ReportMetric(row.KBPerPlayer, "KB/player")
	b.ReportMetric(float64(row.WorstLag.Milliseconds()), "lag-ms")
	b.ReportMetric(0, "ns/op") // one fixed-length run: time per op says nothing
	return row
}
