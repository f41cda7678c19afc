package hoststats

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestSampleFromProc(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
	write("loadavg", "1.50 0.80 0.40 2/300 1234\n")
	write("meminfo", "MemTotal:        2000 kB\nMemFree:          100 kB\nMemAvailable:     500 kB\n")
	write("self/statm", "1000 25 10 1 0 50 0\n")
	s := &Sampler{version: "v9", proc: dir}
	s.busy, s.idle, _ = s.cpuTimes()
	// 300 busy and 100 idle jiffies later: 75 %.
	write("stat", "cpu  250 0 250 750 150 0 0 0 0 0\n")
	st := s.Sample()
	want := Stats{Version: "v9", UptimeSeconds: st.UptimeSeconds, CPUs: runtime.NumCPU(), CPUPercent: 75, Load1: 1.5,
		MemoryTotalBytes: 2000 << 10, MemoryUsedBytes: 1500 << 10, ProcessRSSBytes: 25 * int64(os.Getpagesize())}
	if st != want {
		t.Fatalf("sample %+v, want %+v", st, want)
	}
}

// The real /proc of this (Linux) machine gives plausible figures.
func TestSampleThisHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	st := New("dev").Sample()
	if st.MemoryTotalBytes <= 0 || st.MemoryUsedBytes <= 0 || st.MemoryUsedBytes > st.MemoryTotalBytes || st.ProcessRSSBytes <= 0 ||
		st.CPUPercent < 0 || st.CPUPercent > 100 || st.CPUs < 1 || st.Version != "dev" {
		t.Fatalf("implausible sample %+v", st)
	}
}
