// Package peers starts real third-party peers (ffmpeg, ffprobe, nginx with
// libnginx-mod-rtmp, MediaMTX, SRS) for Portier's end-to-end tests and
// benchmarks. Every helper ties the processes it starts to the test: their
// output goes to files in t.TempDir(), the tail of which is logged when the
// test fails, and t.Cleanup stops each process by its PID (SIGTERM, then
// SIGKILL after a grace period). Nothing here listens on a fixed port.
package peers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopGrace is how long Stop and the test cleanup wait after SIGTERM before
// they send SIGKILL.
const StopGrace = 5 * time.Second

// logTail is how much of a process log is dumped when a test fails.
const logTail = 16 << 10

// Proc is one external process started by this package.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File

	done    chan struct{}
	waitErr error

	progressMu sync.Mutex
	progress   Progress
	samples    []progressSample // bounded ring of (time, total_size)
}

// Progress is the latest block of `ffmpeg -progress` output of a process
// started with progress reporting (Publish does).
type Progress struct {
	Frame     int64         // video frames written
	TotalSize int64         // bytes written by the muxer
	OutTime   time.Duration // media time written
	Updated   time.Time     // when this block arrived (zero: none yet)
	End       bool          // ffmpeg reported progress=end
}

type progressSample struct {
	at   time.Time
	size int64
}

// maxProgressSamples bounds the progress history (at 4 samples/s: ~68 min).
const maxProgressSamples = 16384

// startProc starts cmd with its output in a log file under t.TempDir() and
// registers the cleanup. If progress is true, stdout is parsed as
// `ffmpeg -progress pipe:1` output instead of being logged.
func startProc(t testing.TB, name string, cmd *exec.Cmd, progress bool) (*Proc, error) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	cmd.Stderr = f
	var stdout io.ReadCloser
	if progress {
		stdout, err = cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("stdout pipe for %s: %w", name, err)
		}
	} else {
		cmd.Stdout = f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// If the test binary dies without running cleanups, take the peer along.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	fmt.Fprintf(f, "# %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var readers sync.WaitGroup
	if stdout != nil {
		readers.Add(1)
		go func() {
			defer readers.Done()
			p.readProgress(stdout)
		}()
	}
	go func() {
		readers.Wait()
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- %s (pid %d, exit %d) log tail from %s:\n%s", name, p.PID(), p.ExitCode(), logPath, p.tail(logTail))
		}
	})
	return p, nil
}

// Name is the short name the process was started under.
func (p *Proc) Name() string { return p.name }

// PID is the operating system's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// LogPath is the file that holds the process's stderr (and stdout unless it
// reports progress).
func (p *Proc) LogPath() string { return p.logPath }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process exits and returns its exit error (nil for
// status 0, an *exec.ExitError otherwise).
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// WaitTimeout waits at most d for the process to exit. The boolean is false
// if it was still running when d elapsed.
func (p *Proc) WaitTimeout(d time.Duration) (error, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.waitErr, true
	case <-timer.C:
		return nil, false
	}
}

// ExitCode is the exit status, or -1 while running or when a signal ended
// the process.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and waits up to StopGrace, then sends SIGKILL and
// waits for the exit. It is safe to call more than once.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.WaitTimeout(StopGrace); ok {
		return
	}
	p.Kill()
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stderr returns the process's log so far (stderr, and stdout when it is not
// parsed as progress), at most the last 1 MiB.
func (p *Proc) Stderr() string { return p.tail(1 << 20) }

func (p *Proc) tail(n int64) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	off := int64(0)
	if st.Size() > n {
		off = st.Size() - n
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	return string(b)
}

// Progress returns the latest progress block (zero before the first).
func (p *Proc) Progress() Progress {
	p.progressMu.Lock()
	defer p.progressMu.Unlock()
	return p.progress
}

// WaitFrames waits until the process has written at least n video frames.
// It fails early if the process exits.
func (p *Proc) WaitFrames(ctx context.Context, n int64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.Progress().Frame >= n {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (code %d) after %d frames, waiting for %d: %s",
				p.name, p.ExitCode(), p.Progress().Frame, n, lastLines(p.tail(4096), 5))
		case <-ctx.Done():
			return fmt.Errorf("%s wrote %d frames, waiting for %d: %w", p.name, p.Progress().Frame, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// OutputBitrate is the rate (bits/s) at which the muxer wrote bytes between
// from and to, interpolated from the progress reports.
func (p *Proc) OutputBitrate(from, to time.Time) (float64, error) {
	if !to.After(from) {
		return 0, errors.New("output bitrate: empty window")
	}
	p.progressMu.Lock()
	defer p.progressMu.Unlock()
	a, errA := interpolate(p.samples, from)
	b, errB := interpolate(p.samples, to)
	if err := errors.Join(errA, errB); err != nil {
		return 0, fmt.Errorf("output bitrate of %s: %w", p.name, err)
	}
	return (b - a) * 8 / to.Sub(from).Seconds(), nil
}

func interpolate(s []progressSample, at time.Time) (float64, error) {
	if len(s) < 2 || at.Before(s[0].at) || at.After(s[len(s)-1].at) {
		return 0, fmt.Errorf("no progress samples around %s", at.Format(time.RFC3339Nano))
	}
	for i := 1; i < len(s); i++ {
		if !at.After(s[i].at) {
			a, b := s[i-1], s[i]
			span := b.at.Sub(a.at).Seconds()
			if span <= 0 {
				return float64(b.size), nil
			}
			frac := at.Sub(a.at).Seconds() / span
			return float64(a.size) + frac*float64(b.size-a.size), nil
		}
	}
	return float64(s[len(s)-1].size), nil
}

// readProgress parses `-progress` key=value blocks; each block ends with a
// `progress=continue|end` line.
func (p *Proc) readProgress(r io.Reader) {
	sc := bufio.NewScanner(r)
	var cur Progress
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "frame":
			cur.Frame, _ = strconv.ParseInt(v, 10, 64)
		case "total_size":
			cur.TotalSize, _ = strconv.ParseInt(v, 10, 64)
		case "out_time_us":
			us, _ := strconv.ParseInt(v, 10, 64)
			cur.OutTime = time.Duration(us) * time.Microsecond
		case "progress":
			cur.Updated = time.Now()
			cur.End = v == "end"
			p.progressMu.Lock()
			p.progress = cur
			if len(p.samples) >= maxProgressSamples {
				p.samples = append(p.samples[:0], p.samples[len(p.samples)/2:]...)
			}
			p.samples = append(p.samples, progressSample{at: cur.Updated, size: cur.TotalSize})
			p.progressMu.Unlock()
		}
	}
	// Drain anything left so the process never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.TrimSpace([]byte(strings.Join(lines, " | "))))
}

// Start starts cmd as a peer named name: its output goes to a log file
// under t.TempDir() (tail logged if the test fails), and the test's cleanup
// stops it by its PID. Portier's own nodes started as processes (a control
// plane replica, a relay in a network namespace) use it.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := startProc(t, name, cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
