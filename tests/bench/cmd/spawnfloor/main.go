// Command spawnfloor measures the floor BenchmarkScheduler cannot go below
// on a machine: starting one `sleep` process per task (as schedload does),
// from as many goroutines as the benchmark has concierges, with nothing
// else running.
//
//	go run ./tests/bench/cmd/spawnfloor [-tasks 3000] [-spawners 20]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

func main() {
	tasks := flag.Int("tasks", 3000, "processes to start")
	spawners := flag.Int("spawners", 20, "goroutines starting them")
	flag.Parse()
	if *tasks < 1 || *spawners < 1 || *tasks > 20000 {
		fmt.Fprintln(os.Stderr, "spawnfloor: -tasks 1..20000 and -spawners ≥ 1")
		os.Exit(2)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		cmds []*exec.Cmd
		errs int
	)
	start := time.Now()
	for g := range *spawners {
		n := *tasks / *spawners
		if g < *tasks%*spawners {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				c := exec.Command("sleep", "60")
				c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				err := c.Start()
				mu.Lock()
				if err != nil {
					errs++
				} else {
					cmds = append(cmds, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	for _, c := range cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	var ch syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ch)
	cpu := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	fmt.Printf("%d processes started by %d goroutines in %v (%d failed); CPU: spawner %v, the processes %v\n",
		len(cmds), *spawners, took.Round(time.Millisecond), errs, cpu(ru).Round(time.Millisecond), cpu(ch).Round(time.Millisecond))
}
