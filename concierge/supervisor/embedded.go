package supervisor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerEnv is the environment variable every program of an embedded
// supervisord carries (value: Embedded.Marker()), so that processes left
// behind by a supervisord that died can be found and killed.
const MarkerEnv = "PORTIER_SUPERVISOR"

// EmbeddedParams configures an Embedded supervisord.
type EmbeddedParams struct {
	// Binary is the supervisord executable; "" means FindBinary().
	Binary string
	// Dir holds the generated config, socket, logs and the program include dir.
	Dir string
	// OnRestart is called (from the monitor goroutine) after supervisord died
	// and was started again, so the owner can reconcile.
	OnRestart func()
	Logger    *slog.Logger
}

// Embedded is a supervisord started and owned by this process: it is
// restarted if it dies, and killed (with its programs) by Close. Its state is
// guarded by mu, never held across a wait.
type Embedded struct {
	p      EmbeddedParams
	sock   string
	marker string
	log    *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	closing  bool
	restarts int
	done     chan struct{}
}

// FindBinary looks for supervisord next to the running executable (where
// `make build` puts ochinchina's), then on PATH (which may be Python's).
func FindBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "supervisord")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("supervisord"); err == nil {
		return p, nil
	}
	return "", errors.New("no supervisord found: run `make build` (puts bin/supervisord next to bin/portier), install Debian's `supervisor`, or pass --supervisor-url")
}

// StartEmbedded writes a config into p.Dir and starts supervisord, waiting
// until it answers. Programs left running by an earlier instance with the
// same Dir are killed first.
func StartEmbedded(ctx context.Context, p EmbeddedParams) (*Embedded, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Binary == "" {
		b, err := FindBinary()
		if err != nil {
			return nil, err
		}
		p.Binary = b
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return nil, err
	}
	p.Dir = dir
	// Program files hold task command lines (with their keys) and the logs
	// hold what ffmpeg prints about them: only this user may read them.
	for _, d := range []string{dir, filepath.Join(dir, "programs"), filepath.Join(dir, "logs")} {
		if err := PrivateDir(d); err != nil {
			return nil, fmt.Errorf("supervisord dir: %w", err)
		}
	}
	e := &Embedded{p: p, marker: Marker(dir), done: make(chan struct{})}
	e.log = p.Logger.With("component", "supervisord", "dir", dir)
	e.sock = filepath.Join(dir, "supervisor.sock")
	if len(e.sock) > 100 { // sun_path limit
		e.sock = filepath.Join(os.TempDir(), "portier-sv-"+e.marker+".sock")
	}
	if err := plainValue(dir); err != nil {
		return nil, fmt.Errorf("supervisord dir: %w", err)
	}
	conf := fmt.Sprintf(`[unix_http_server]
file=%[1]s
chmod=0700

[supervisord]
nodaemon=true
silent=true
logfile=%[2]s/supervisord.log
logfile_maxbytes=5MB
logfile_backups=2
pidfile=%[2]s/supervisord.pid
childlogdir=%[2]s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s

[include]
files=%[2]s/programs/*.conf
`, e.sock, dir)
	if err := WritePrivate(filepath.Join(dir, "supervisord.conf"), []byte(conf)); err != nil {
		return nil, fmt.Errorf("write supervisord config: %w", err)
	}
	e.killLeftovers()
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	go e.monitor()
	return e, nil
}

// URL is the XML-RPC address of this supervisord.
func (e *Embedded) URL() string { return "unix://" + e.sock }

// IncludeDir is where program sections go (see NewDriver).
func (e *Embedded) IncludeDir() string { return filepath.Join(e.p.Dir, "programs") }

// LogDir is a directory for program log files.
func (e *Embedded) LogDir() string { return filepath.Join(e.p.Dir, "logs") }

// Marker is the value of MarkerEnv to put in every program's environment.
func (e *Embedded) Marker() string { return e.marker }

// Marker is the MarkerEnv value of the programs of the embedded supervisord
// in dir (an absolute path): a hash of dir, so the same directory gets the
// same marker after a restart.
func Marker(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:8])
}

// PID is the current supervisord's process id (0 if none).
func (e *Embedded) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil || e.cmd.Process == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

// Restarts counts how often supervisord died and was restarted.
func (e *Embedded) Restarts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restarts
}

func (e *Embedded) start(ctx context.Context) error {
	_ = os.Remove(e.sock)
	cmd := exec.Command(e.p.Binary, "-c", filepath.Join(e.p.Dir, "supervisord.conf"))
	cmd.Dir = e.p.Dir
	// supervisord's own output goes to a file, not to a pipe to this
	// process: with nodaemon it echoed its log there (silent=true stops
	// that on Python's; the file keeps what it prints before its log is
	// open), and after this process died Python's supervisord met a
	// broken pipe while logging the SIGTERM below and exited without
	// stopping its programs.
	outPath := filepath.Join(e.p.Dir, "supervisord.out")
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("supervisord output file: %w", err)
	}
	defer out.Close() // the child keeps its own descriptor
	cmd.Stdout = out
	cmd.Stderr = out
	// If this process dies (even by SIGKILL), supervisord gets SIGTERM and
	// stops its programs: a crashed concierge leaves no ffmpeg behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start supervisord %s: %w", e.p.Binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c, err := Dial(e.URL())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := c.GetState(ctx)
		if err == nil && st == "RUNNING" {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("supervisord %s exited at start: %s", e.p.Binary, snippet(headOf(outPath, 16<<10)))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("supervisord %s did not answer within 15s: %v", e.p.Binary, err)
		}
	}
	e.mu.Lock()
	e.cmd, e.exited = cmd, exited
	e.mu.Unlock()
	e.log.Info("supervisord started", "pid", cmd.Process.Pid, "binary", e.p.Binary)
	return nil
}

// monitor restarts supervisord when it dies, until Close.
func (e *Embedded) monitor() {
	defer close(e.done)
	backoff := 200 * time.Millisecond
	for {
		e.mu.Lock()
		exited := e.exited
		e.mu.Unlock()
		<-exited
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if closing {
			return
		}
		e.log.Warn("supervisord died; killing its leftover programs and restarting it")
		e.killLeftovers()
		for {
			time.Sleep(backoff)
			e.mu.Lock()
			closing := e.closing
			e.mu.Unlock()
			if closing {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := e.start(ctx)
			cancel()
			if err == nil {
				break
			}
			e.log.Error("restart supervisord", "err", err)
			backoff = min(backoff*2, 10*time.Second)
		}
		backoff = 200 * time.Millisecond
		e.mu.Lock()
		e.restarts++
		e.mu.Unlock()
		if e.p.OnRestart != nil {
			e.p.OnRestart()
		}
	}
}

// killLeftovers kills any supervisord of an earlier run (pid file) and every
// process of this instance: those carrying its marker, and forks of a dead
// supervisord that had not yet exec'd their program (Python supervisord
// with startsecs=0 reports RUNNING right after fork; such a child still has
// supervisord's command line and environment, not the marker, and would
// exec the program after the scan and outlive the restart).
func (e *Embedded) killLeftovers() {
	conf := filepath.Join(e.p.Dir, "supervisord.conf")
	pidFile := filepath.Join(e.p.Dir, "supervisord.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 && pid != os.Getpid() {
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
				bytes.Contains(cmdline, []byte(conf)) {
				e.log.Warn("killing a supervisord left by an earlier run", "pid", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if n := killInstance(MarkerEnv+"="+e.marker, conf); n > 0 {
		e.log.Warn("killed programs left by a dead supervisord", "count", n)
	}
}

// killInstance SIGKILLs every process (but this one) whose environment holds
// marker ("KEY=VALUE") or whose command line mentions conf. It is called
// only while no supervisord of this instance runs, so nothing it matches
// may live. A process caught inside execve shows an empty command line and
// environment for a moment (seen under load: the orphaned program escaped
// the scan): such a process, unless a kernel thread, is looked at again
// until it shows them, for up to a second.
func killInstance(marker, conf string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	var unsure []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		switch instanceProcess(pid, marker, conf) {
		case procMatch:
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		case procUnsure:
			unsure = append(unsure, pid)
		}
	}
	deadline := time.Now().Add(time.Second)
	for len(unsure) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		unsure = slices.DeleteFunc(unsure, func(pid int) bool {
			switch instanceProcess(pid, marker, conf) {
			case procMatch:
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
				return true
			case procUnsure:
				return false
			}
			return true
		})
	}
	return n
}

type procVerdict int

const (
	procOther procVerdict = iota
	procMatch
	procUnsure // empty command line: inside execve, or a kernel thread
)

// instanceProcess tells whether pid belongs to the instance (see
// killInstance). The command line is read first: a fork that execs between
// the two reads is caught by one or the other.
func instanceProcess(pid int, marker, conf string) procVerdict {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return procOther // gone
	}
	if bytes.Contains(cmdline, []byte(conf)) {
		return procMatch
	}
	env, err := os.ReadFile(filepath.Join(dir, "environ"))
	if err == nil && slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return string(kv) == marker }) {
		return procMatch
	}
	if len(cmdline) == 0 && !kernelThreadOrZombie(dir) {
		return procUnsure
	}
	return procOther
}

// kernelThreadOrZombie reports whether the process in dir is a kernel
// thread (its parent is kthreadd, pid 2, or it is kthreadd) or a zombie:
// both have an empty command line for good.
func kernelThreadOrZombie(dir string) bool {
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return true
	}
	// "pid (comm) state ppid …": comm may hold spaces; parse after ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return true
	}
	f := strings.Fields(string(stat[i+1:]))
	return len(f) < 2 || f[0] == "Z" || f[1] == "2" || f[1] == "0"
}

// Close stops supervisord (which stops its programs with their stop signal),
// waiting up to timeout before killing it and any leftover program.
func (e *Embedded) Close(timeout time.Duration) error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.closing = true
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	<-e.done
	e.killLeftovers()
	_ = os.Remove(e.sock)
	return nil
}

// headOf returns up to max bytes from the start of the file at path
// (supervisord's early output), nothing if it cannot be read.
func headOf(path string, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return b
}
