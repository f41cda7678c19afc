package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports (sysconf would need cgo).
const clockTicks = 100

// maxTreeProcs bounds the descendants a ProcUsage follows.
const maxTreeProcs = 256

// ProcUsage is the resource use of a process and its descendants (nginx's
// master and workers count together).
type ProcUsage struct {
	CPUSeconds float64 // utime + stime, summed
	RSSKB      int64   // VmRSS, summed
	HWMKB      int64   // VmHWM (peak RSS of each process), summed
	Procs      int
}

// ReadProcUsage reads /proc for pid and every descendant of it.
func ReadProcUsage(pid int) (ProcUsage, error) {
	pids, err := procTree(pid)
	if err != nil {
		return ProcUsage{}, err
	}
	var u ProcUsage
	for _, p := range pids {
		cpu, _, err := readStat(p)
		if err != nil {
			if p == pid {
				return ProcUsage{}, err
			}
			continue // a child that just exited
		}
		rss, hwm, err := readStatus(p)
		if err != nil {
			if p == pid {
				return ProcUsage{}, err
			}
			continue
		}
		u.CPUSeconds += cpu
		u.RSSKB += rss
		u.HWMKB += hwm
		u.Procs++
	}
	return u, nil
}

// readStat returns utime+stime in seconds and the parent pid.
func readStat(pid int) (float64, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat of %d: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat of %d: %d fields", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, fmt.Errorf("stat of %d: bad numbers", pid)
	}
	return float64(ut+st) / clockTicks, ppid, nil
}

// readStatus returns VmRSS and VmHWM in KB.
func readStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("status of %d: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm, nil
}

// procTree lists pid and its descendants (breadth first, bounded).
func procTree(pid int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	entries, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(filepath.Base(e))
		if err != nil || p == pid {
			continue
		}
		if _, ppid, err := readStat(p); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out) && len(out) < maxTreeProcs; i++ {
		out = append(out, children[out[i]]...)
	}
	return out[:min(len(out), maxTreeProcs)], nil
}

// ProcStats is what a ProcSampler measured between start and Stop.
type ProcStats struct {
	CPUSeconds    float64 // CPU time used between start and Stop
	BaselineRSSKB int64   // RSS at start
	PeakRSSKB     int64   // highest RSS seen (sampled, and VmHWM at Stop)
	Samples       int
	Wall          time.Duration
}

// ProcSampler samples a process tree's memory periodically and its CPU
// time at start and stop.
type ProcSampler struct {
	pid   int
	first ProcUsage
	t0    time.Time
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	peakRSS int64
	samples int
}

// StartProcSampler takes a baseline of pid now and samples RSS every
// interval (default 250 ms) until Stop.
func StartProcSampler(pid int, interval time.Duration) (*ProcSampler, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	u, err := ReadProcUsage(pid)
	if err != nil {
		return nil, err
	}
	s := &ProcSampler{pid: pid, first: u, t0: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		peakRSS: u.RSSKB, samples: 1}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				if u, err := ReadProcUsage(pid); err == nil {
					s.mu.Lock()
					s.peakRSS = max(s.peakRSS, u.RSSKB)
					s.samples++
					s.mu.Unlock()
				}
			}
		}
	}()
	return s, nil
}

// Stop ends sampling and returns the measurements. The process must still
// be running.
func (s *ProcSampler) Stop() (ProcStats, error) {
	close(s.stop)
	<-s.done
	u, err := ReadProcUsage(s.pid)
	if err != nil {
		return ProcStats{}, fmt.Errorf("final sample: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return ProcStats{
		CPUSeconds:    u.CPUSeconds - s.first.CPUSeconds,
		BaselineRSSKB: s.first.RSSKB,
		PeakRSSKB:     max(s.peakRSS, u.RSSKB, u.HWMKB),
		Samples:       s.samples + 1,
		Wall:          time.Since(s.t0),
	}, nil
}
