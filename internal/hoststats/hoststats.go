// Package hoststats samples what a node reports about its host with every
// heartbeat: CPU and memory use, the process's resident memory, its version
// and uptime. It reads Linux's /proc; elsewhere the host figures stay zero.
package hoststats

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stats is one sample. internal/nodewire.HostStats and
// concierge/wire.HostStats have the same fields, in the same order, so a
// sample converts to either (nodewire.HostStats(s)): adding a field here
// without adding it there fails to compile.
type Stats struct {
	Version       string `json:"version,omitempty"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	CPUs          int    `json:"cpus"`
	// CPUPercent is the host's CPU use since the previous sample, 100 when
	// every CPU was busy.
	CPUPercent       float64 `json:"cpu_percent"`
	Load1            float64 `json:"load1"`
	MemoryTotalBytes int64   `json:"memory_total_bytes"`
	MemoryUsedBytes  int64   `json:"memory_used_bytes"`
	ProcessRSSBytes  int64   `json:"process_rss_bytes"`
}

// Sampler takes samples; its CPU figure is the use between two calls of
// Sample. Safe for concurrent use (a mutex guards the previous CPU
// counters; it is held only while reading /proc).
type Sampler struct {
	version string
	start   time.Time
	proc    string // "/proc", a test may point it elsewhere

	mu         sync.Mutex
	busy, idle uint64
}

// New returns a sampler of a process started now, at version.
func New(version string) *Sampler {
	s := &Sampler{version: version, start: time.Now(), proc: "/proc"}
	s.busy, s.idle, _ = s.cpuTimes()
	return s
}

// Sample reads the host's figures now.
func (s *Sampler) Sample() Stats {
	st := Stats{Version: s.version, UptimeSeconds: int64(time.Since(s.start) / time.Second), CPUs: runtime.NumCPU()}
	s.mu.Lock()
	if busy, idle, ok := s.cpuTimes(); ok {
		db, di := busy-s.busy, idle-s.idle
		if busy >= s.busy && idle >= s.idle && db+di > 0 {
			st.CPUPercent = float64(int(1000*float64(db)/float64(db+di))) / 10
		}
		s.busy, s.idle = busy, idle
	}
	s.mu.Unlock()
	if b, err := os.ReadFile(s.proc + "/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			st.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	st.MemoryTotalBytes, st.MemoryUsedBytes = s.memory()
	if b, err := os.ReadFile(s.proc + "/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			st.ProcessRSSBytes = pages * int64(os.Getpagesize())
		}
	}
	return st
}

// cpuTimes reads the host's busy and idle jiffies (the "cpu" line of
// /proc/stat; idle includes iowait).
func (s *Sampler) cpuTimes() (busy, idle uint64, ok bool) {
	b, err := os.ReadFile(s.proc + "/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 {
			idle += n
		} else {
			busy += n
		}
	}
	return busy, idle, true
}

// memory reads total and used (total less available) bytes from /proc/meminfo.
func (s *Sampler) memory() (total, used int64) {
	f, err := os.Open(s.proc + "/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var avail int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			total = kb << 10
		case "MemAvailable":
			avail = kb << 10
		}
	}
	if total == 0 {
		return 0, 0
	}
	return total, total - avail
}
