package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// BenchmarkWriteFloor measures, for each PORTIER_BENCH_N, what the
// fan-out's writes cost on this machine with nothing else to do: a loop of
// one writev per player per batch of 1, 2 or 3 video frames
// (tests/bench/cmd/writefloor), to loopback sockets read by another
// process. No server's CPU per Gbit can go below the floor for the frames
// per write it uses, so a server's row in BenchmarkRTMPFanoutPeers read
// against this table says how much of its CPU is its own and how many
// frames per write (how much added lag) a CPU figure needs. Run it next to
// BenchmarkRTMPFanoutPeers: the floor moves between runs by about 15 %.
func BenchmarkWriteFloor(b *testing.B) {
	sizes, dur := benchSizesAndDuration(b)
	bin := buildWriteFloor(b)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tframes per write\tadded hold ms\twrites/s\tCPU s/Gbit\t")
	for _, n := range sizes {
		for _, k := range []int{1, 2, 3} {
			b.Run(fmt.Sprintf("N=%d/frames=%d", n, k), func(b *testing.B) {
				f, err := runWriteFloor(b, bin, n, k, dur)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(f.cpuPerGbit, "cpu-s/Gbit")
				b.ReportMetric(f.writesPerSec, "writes/s")
				fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.3f\t\n", n, k, f.holdMS, f.writesPerSec, f.cpuPerGbit)
			})
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(os.Stdout, "\nWrite floor (one writev per player per batch, nothing else), %s per run:\n%s\n", dur, table.String())
}

// buildWriteFloor builds the floor's tool into a temporary directory.
func buildWriteFloor(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "writefloor")
	build := exec.Command("go", "build", "-o", bin, "github.com/portier/portier/tests/bench/cmd/writefloor")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build writefloor: %v\n%s", err, out)
	}
	return bin
}

type writeFloor struct {
	writesPerSec, cpuPerGbit float64
	holdMS                   int
}

// runWriteFloor runs the writefloor binary once and parses its line.
func runWriteFloor(tb testing.TB, bin string, players, k int, dur time.Duration) (writeFloor, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-players", strconv.Itoa(players), "-frames-per-write", strconv.Itoa(k),
		"-seconds", strconv.Itoa(int(dur.Seconds())))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return writeFloor{}, fmt.Errorf("writefloor: %w", err)
	}
	return parseWriteFloor(string(out))
}

// parseWriteFloor reads writefloor's line: "players P frames/write K
// writes/s W cpu-s/Gbit C cpu X% hold-ms H full-sockets F".
func parseWriteFloor(line string) (writeFloor, error) {
	fields := strings.Fields(line)
	vals := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		vals[fields[i]] = fields[i+1]
	}
	var f writeFloor
	var err1, err2, err3 error
	f.writesPerSec, err1 = strconv.ParseFloat(vals["writes/s"], 64)
	f.cpuPerGbit, err2 = strconv.ParseFloat(vals["cpu-s/Gbit"], 64)
	f.holdMS, err3 = strconv.Atoi(vals["hold-ms"])
	if err1 != nil || err2 != nil || err3 != nil {
		return f, fmt.Errorf("writefloor printed %q", strings.TrimSpace(line))
	}
	if full := vals["full-sockets"]; full != "0" {
		return f, fmt.Errorf("writefloor found full sockets (%s): the sink did not keep up, the floor is not one", full)
	}
	return f, nil
}

// TestWriteFloor runs the floor's tool briefly with a few players: it
// writes every batch whole, and its line parses into what the benchmark
// reports.
func TestWriteFloor(t *testing.T) {
	bin := buildWriteFloor(t)
	f, err := runWriteFloor(t, bin, 20, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 20 players, a write per two frames at 25 fps: 250 writes/s.
	if f.writesPerSec < 200 || f.writesPerSec > 300 || f.holdMS != 40 || f.cpuPerGbit <= 0 {
		t.Fatalf("writefloor: %+v; want about 250 writes/s, a 40 ms hold and some CPU", f)
	}
	if _, err := parseWriteFloor("players 1 frames/write 1 writes/s 25 cpu-s/Gbit 0.1 cpu 1% hold-ms 0 full-sockets 3"); err == nil {
		t.Fatal("a run that found full sockets was taken as a floor")
	}
}
