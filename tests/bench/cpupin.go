package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// CPU pinning for benchmarks that give the server under test one core and
// the load client another (BenchmarkFanoutKnee). Linux keeps the affinity
// per thread, so every thread of every process in a tree is set, and the
// pass repeats until it finds nothing left to move: a thread created during
// a pass by a thread not yet moved starts with the old set (new threads and
// children inherit the set of the thread that creates them).

// Bounds on pinning and sampling.
const (
	maxPinPasses   = 5
	maxCPUIndex    = 1024 // unix.CPUSet's size
	maxCoreSamples = 4096 // 34 min at the knee's 500 ms
)

// AllowedCPUs returns the CPUs the calling thread may run on, ascending.
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return cpuList(&set), nil
}

func cpuList(set *unix.CPUSet) []int {
	var out []int
	for c := range maxCPUIndex {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

func cpuSetOf(cpus []int) (*unix.CPUSet, error) {
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= maxCPUIndex {
			return nil, fmt.Errorf("cpu %d out of range", c)
		}
		set.Set(c)
	}
	if set.Count() == 0 {
		return nil, errors.New("empty cpu set")
	}
	return &set, nil
}

// PinTree sets the affinity of every thread of pid and of its descendants
// to cpus, leaving out the processes in skip (and so none of their threads).
// It returns the processes it pinned.
func PinTree(pid int, cpus []int, skip map[int]bool) ([]int, error) {
	set, err := cpuSetOf(cpus)
	if err != nil {
		return nil, err
	}
	for range maxPinPasses {
		pids, err := procTree(pid)
		if err != nil {
			return nil, err
		}
		var kept []int
		moved := 0
		for _, p := range pids {
			if skip[p] {
				continue
			}
			n, err := pinThreads(p, set)
			if err != nil {
				if p == pid {
					return nil, err
				}
				continue // a child that exited during the pass
			}
			kept = append(kept, p)
			moved += n
		}
		if moved == 0 {
			return kept, nil
		}
	}
	return nil, fmt.Errorf("pin process tree of %d to cpus %v: threads still moving after %d passes", pid, cpus, maxPinPasses)
}

// pinThreads sets every thread of pid whose affinity differs from set and
// returns how many it set.
func pinThreads(pid int, set *unix.CPUSet) (int, error) {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, fmt.Errorf("threads of %d: %w", pid, err)
	}
	moved := 0
	for _, d := range dirs {
		tid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &cur); err != nil {
			continue // the thread exited
		}
		if cur == *set {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return moved, fmt.Errorf("sched_setaffinity %d (thread of %d): %w", tid, pid, err)
		}
		moved++
	}
	return moved, nil
}

// ThreadsOffCPUs counts the threads of pid's tree whose affinity is not
// exactly cpus (a check after a run that nothing escaped the pin).
func ThreadsOffCPUs(pid int, cpus []int) (int, error) {
	set, err := cpuSetOf(cpus)
	if err != nil {
		return 0, err
	}
	pids, err := procTree(pid)
	if err != nil {
		return 0, err
	}
	off := 0
	for _, p := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*", p))
		for _, t := range tasks {
			tid, _ := strconv.Atoi(filepath.Base(t))
			var cur unix.CPUSet
			if unix.SchedGetaffinity(tid, &cur) == nil && cur != *set {
				off++
			}
		}
	}
	return off, nil
}

// cpuJiffies is one CPU's line of /proc/stat. Busy includes irq (hard and
// soft interrupts: loopback TCP's receive side mostly runs as a softirq on
// the sender's CPU) and steal (time the hypervisor gave to other guests).
type cpuJiffies struct{ busy, total, irq, steal uint64 }

// readCPUJiffies reads the per-CPU lines of /proc/stat ("cpuN ..."),
// indexed by N. Idle and iowait are idle; guest time is already in user.
func readCPUJiffies() (map[int]cpuJiffies, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUJiffies(b)
}

func parseCPUJiffies(b []byte) (map[int]cpuJiffies, error) {
	out := map[int]cpuJiffies{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		c, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var j cpuJiffies
		for i, v := range f[1:min(len(f), 9)] { // user … steal
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			j.total += n
			switch i {
			case 3, 4: // idle, iowait
			case 5, 6:
				j.busy += n
				j.irq += n
			case 7:
				j.busy += n
				j.steal += n
			default:
				j.busy += n
			}
		}
		out[c] = j
	}
	if len(out) == 0 {
		return nil, errors.New("/proc/stat: no per-cpu lines")
	}
	return out, nil
}

// CoreUse is what a CoreSampler saw between two instants.
type CoreUse struct {
	ServerCores float64         // server tree CPU seconds per second
	ClientCores float64         // this process's CPU seconds per second
	Busy        map[int]float64 // each CPU's busy share (every process on it), 0..1
	IRQ         map[int]float64 // each CPU's share in hard and soft interrupts
	Steal       map[int]float64 // each CPU's share stolen by the hypervisor
	Span        time.Duration   // between the samples used
}

// Others is the share of cpu that went neither to interrupts, nor to steal,
// nor to own (the cores of the process pinned there): other processes.
func (u CoreUse) Others(cpu int, own float64) float64 {
	return max(0, u.Busy[cpu]-u.IRQ[cpu]-u.Steal[cpu]-own)
}

type coreSample struct {
	at     time.Time
	server float64
	client float64
	cpus   map[int]cpuJiffies
}

// CoreSampler records, every interval, the CPU time of a server's process
// tree and of this process and the jiffies of every CPU, so that their use
// inside a load run's measurement window can be read afterwards.
type CoreSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []coreSample
}

// StartCoreSampler samples now and then every interval until Stop.
func StartCoreSampler(serverPID int, interval time.Duration) (*CoreSampler, error) {
	s := &CoreSampler{pid: serverPID, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.sample(); err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				_ = s.sample() // a missed sample widens the span, nothing more
			}
		}
	}()
	return s, nil
}

func (s *CoreSampler) sample() error {
	cpus, err := readCPUJiffies()
	if err != nil {
		return err
	}
	u, err := ReadProcUsage(s.pid)
	if err != nil {
		return err
	}
	self, _, err := readStat(os.Getpid())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < maxCoreSamples {
		s.samples = append(s.samples, coreSample{at: time.Now(), server: u.CPUSeconds, client: self, cpus: cpus})
	}
	return nil
}

// Stop ends sampling (taking one last sample).
func (s *CoreSampler) Stop() {
	close(s.stop)
	<-s.done
	_ = s.sample()
}

// Between returns the use between the first sample at or after from and
// the last at or before to.
func (s *CoreSampler) Between(from, to time.Time) (CoreUse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := -1, -1
	for i, sm := range s.samples {
		if a < 0 && !sm.at.Before(from) {
			a = i
		}
		if !sm.at.After(to) {
			b = i
		}
	}
	if a < 0 || b <= a {
		return CoreUse{}, fmt.Errorf("fewer than two samples between %s and %s", from.Format(time.TimeOnly), to.Format(time.TimeOnly))
	}
	x, y := s.samples[a], s.samples[b]
	sec := y.at.Sub(x.at).Seconds()
	use := CoreUse{ServerCores: (y.server - x.server) / sec, ClientCores: (y.client - x.client) / sec,
		Busy: map[int]float64{}, IRQ: map[int]float64{}, Steal: map[int]float64{}, Span: y.at.Sub(x.at)}
	for c, j1 := range y.cpus {
		j0, ok := x.cpus[c]
		if ok && j1.total > j0.total {
			t := float64(j1.total - j0.total)
			use.Busy[c] = float64(j1.busy-j0.busy) / t
			use.IRQ[c] = float64(j1.irq-j0.irq) / t
			use.Steal[c] = float64(j1.steal-j0.steal) / t
		}
	}
	return use, nil
}
