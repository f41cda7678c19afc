package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Profiles of our servers under load: a FanoutTarget with a PprofURL gets a
// CPU profile over the measurement window and heap and allocation profiles
// in its middle, for the player counts in PORTIER_BENCH_PROFILE_N (default
// 1000; "0" for none). They land in PORTIER_BENCH_PROFILE_DIR (default a
// directory under the system's temporary one, kept after the run), and the
// top of each is printed with the benchmark's output.

// profileSizes reads PORTIER_BENCH_PROFILE_N.
func profileSizes() ([]int, error) {
	if os.Getenv("PORTIER_BENCH_PROFILE_N") == "0" {
		return nil, nil
	}
	return benchSizesFrom("PORTIER_BENCH_PROFILE_N", []int{1000})
}

// profileDir is where profiles are written; it is created when missing.
func profileDir() (string, error) {
	dir := os.Getenv("PORTIER_BENCH_PROFILE_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "portier-bench-profiles")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// profiler captures one run's profiles.
type profiler struct {
	base, dir, name string
	cpuDone         chan error
	heapDone        chan string // what went wrong taking the heap profiles ("" when nothing)
}

// startProfiler starts a CPU profile of seconds at pprofURL (the server's
// http://host:port, serving /debug/pprof/) when n is one of the profiled
// sizes; it returns nil otherwise.
func startProfiler(ctx context.Context, pprofURL, server string, n int, seconds int) (*profiler, error) {
	sizes, err := profileSizes()
	if err != nil || pprofURL == "" || !slices.Contains(sizes, n) {
		return nil, err
	}
	dir, err := profileDir()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-N%d", strings.ReplaceAll(server, " ", "-"), n)
	p := &profiler{base: pprofURL, dir: dir, name: name, cpuDone: make(chan error, 1), heapDone: make(chan string, 1)}
	go func() {
		p.cpuDone <- p.fetch(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), name+".cpu.pprof")
	}()
	// Memory in the middle of the window, while every player is connected.
	go func() {
		select {
		case <-time.After(time.Duration(seconds) * time.Second / 2):
		case <-ctx.Done():
		}
		var errs []string
		for _, kind := range []string{"heap", "allocs", "heap?debug=1", "goroutine?debug=1"} {
			file := p.name + "." + kind + ".pprof"
			if k, _, ok := strings.Cut(kind, "?"); ok {
				file = p.name + "." + k + ".txt"
			}
			if err := p.fetch(ctx, "/debug/pprof/"+kind, file); err != nil {
				errs = append(errs, fmt.Sprintf("%s profile: %v", kind, err))
			}
		}
		p.heapDone <- strings.Join(errs, "\n")
	}()
	return p, nil
}

// finish waits for the profiles and returns a report: the files and the top
// of each.
func (p *profiler) finish(ctx context.Context) string {
	var b strings.Builder
	if err := <-p.cpuDone; err != nil {
		fmt.Fprintf(&b, "cpu profile: %v\n", err)
	}
	if msg := <-p.heapDone; msg != "" {
		b.WriteString(msg + "\n")
	}
	// The runtime's memory split (heap, goroutine stacks, GC).
	if txt, err := os.ReadFile(filepath.Join(p.dir, p.name+".heap.txt")); err == nil {
		b.WriteString("runtime.MemStats mid-window:")
		for _, line := range strings.Split(string(txt), "\n") {
			for _, k := range []string{"# Sys ", "# HeapAlloc ", "# HeapSys ", "# HeapInuse ", "# HeapIdle ", "# HeapReleased ", "# Stack ", "# GCSys ", "# NextGC ", "# NumGC "} {
				if strings.HasPrefix(line, k) {
					b.WriteString(" " + strings.TrimPrefix(line, "# "))
				}
			}
		}
		b.WriteString("\n")
	}
	if txt, err := os.ReadFile(filepath.Join(p.dir, p.name+".goroutine.txt")); err == nil {
		first, _, _ := strings.Cut(string(txt), "\n")
		fmt.Fprintf(&b, "%s (stacks in %s)\n", first, filepath.Join(p.dir, p.name+".goroutine.txt"))
	}
	for _, f := range []struct{ file, index string }{
		{p.name + ".cpu.pprof", ""},
		{p.name + ".heap.pprof", "-sample_index=inuse_space"},
		{p.name + ".allocs.pprof", "-sample_index=alloc_space"},
	} {
		path := filepath.Join(p.dir, f.file)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		args := []string{"tool", "pprof", "-top", "-nodecount=20"}
		if f.index != "" {
			args = append(args, f.index)
		}
		out, err := exec.CommandContext(ctx, "go", append(args, path)...).CombinedOutput()
		fmt.Fprintf(&b, "--- %s (go %s)\n%s", path, strings.Join(append(args, path), " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(pprof: %v)\n", err)
		}
	}
	return b.String()
}

func (p *profiler) fetch(ctx context.Context, path, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, res.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
