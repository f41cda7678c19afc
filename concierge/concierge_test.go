package concierge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/portiertest"
)

func TestRefusesWithoutFFmpeg(t *testing.T) {
	_, err := concierge.New(concierge.Params{Control: "http://127.0.0.1:1", Name: "x", FFmpeg: "no-such-ffmpeg-binary"})
	if err == nil || !strings.Contains(err.Error(), "ffmpeg not found") {
		t.Fatalf("err = %v; want a clear ffmpeg-not-found message", err)
	}
	_, err = concierge.New(concierge.Params{Control: "ftp://x", Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "--control") {
		t.Fatalf("bad control URL: %v", err)
	}
}

// TestFailingTaskBacksOff runs a real ffmpeg that pushes to a port where
// nothing listens, under each real supervisord: the task must back off
// exponentially and say why.
func TestFailingTaskBacksOff(t *testing.T) {
	for _, sv := range []struct {
		name   string
		binary func(testing.TB) string
	}{{"ochinchina", supervisortest.Ochinchina}, {"python", supervisortest.Python}} {
		t.Run(sv.name, func(t *testing.T) { testFailingTaskBacksOff(t, sv.binary(t), sv.name == "python") })
	}
}

func testFailingTaskBacksOff(t *testing.T, supervisord string, wantExitCode bool) {
	ctx := context.Background()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	s := startStackWith(t, concierge.Params{SupervisorBinary: supervisord, BackoffMin: 300 * time.Millisecond, HTTPAddr: "127.0.0.1:0", DataDir: dataDir})
	store, c := s.store, s.c

	tk, _, err := store.CreateCompiledTask(ctx, &models.Task{StreamID: s.stream, Type: models.TypeRestream, DesiredState: models.DesiredRunning,
		State: models.TaskPending, Description: models.TaskDescription{Command: "ffmpeg", Cost: 1, Args: []string{
			"-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
			"-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", "rtmp://" + closed + "/live/target"}}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	deadline := t0.Add(30 * time.Second)
	var cur *models.Task
	var errs []string
	for time.Now().Before(deadline) {
		cur, _ = store.TaskByID(ctx, tk.ID)
		if len(errs) == 0 || errs[len(errs)-1] != cur.LastError {
			errs = append(errs, cur.LastError)
		}
		if cur.Restarts >= 3 && cur.State == models.TaskBackoff {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cur.Restarts < 3 || !strings.Contains(cur.LastError, "target refused connection") {
		t.Fatalf("task %+v; want backoff with restarts ≥ 3 and reason 'target refused connection'", cur)
	}
	if wantExitCode && (cur.LastExitCode == nil || *cur.LastExitCode == 0) {
		t.Fatalf("exit code %v; want ffmpeg's failure code", cur.LastExitCode)
	}
	if cur.LastExitCode != nil && *cur.LastExitCode == 0 {
		t.Fatalf("exit code 0 reported for a failure")
	}
	if !strings.Contains(cur.LogTail, "Connection refused") {
		t.Fatalf("log tail %q; want ffmpeg's error", cur.LogTail)
	}
	// ffmpeg names the target with its key (the last path segment of a
	// restream target): the reports show it masked.
	if strings.Contains(cur.LogTail+cur.LastError, "/live/target") || !strings.Contains(cur.LogTail, "/live/***: Connection refused") {
		t.Fatalf("log tail %q: want the target's key masked", cur.LogTail)
	}
	// What holds the command line and ffmpeg's log is private.
	sv := filepath.Join(dataDir, "supervisord")
	modes := map[string]os.FileMode{dataDir: 0o700, sv: 0o700, filepath.Join(sv, "programs"): 0o700, filepath.Join(sv, "logs"): 0o700,
		filepath.Join(sv, "supervisord.conf"): 0o600}
	files, _ := filepath.Glob(filepath.Join(sv, "programs", "task-*.conf"))
	logs, _ := filepath.Glob(filepath.Join(sv, "logs", "task-*.log"))
	if len(files) == 0 || len(logs) == 0 {
		t.Fatalf("program files %v, task logs %v", files, logs)
	}
	for _, f := range append(files, logs...) {
		modes[f] = 0o600
	}
	for path, want := range modes {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	// Delays double: 300ms, 600ms, 1.2s (plus start and detection time).
	all := strings.Join(errs, "|")
	if !strings.Contains(all, "retry 1 in 300ms") || !strings.Contains(all, "retry 2 in 600ms") || !strings.Contains(all, "retry 3 in 1.2s") {
		t.Fatalf("backoff delays %q; want 300ms, 600ms, 1.2s", errs)
	}
	base := "http://" + c.HTTPAddr().String()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "portier_concierge_task_failures_total"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d %q; want 200 with %q", path, resp.StatusCode, b, want)
		}
	}
	t.Logf("%v: %d restarts, state %s, error %q, exit %v", time.Since(t0).Round(time.Millisecond), cur.Restarts, cur.State, cur.LastError, cur.LastExitCode)
}

type stack struct {
	store  *models.Store
	stream int64
	hs     *httptest.Server
	c      *concierge.Concierge
}

// startStack runs a control plane (SQLite, lease 1 s) and one in-process
// concierge with an embedded supervisord.
func startStack(t *testing.T, supervisord string) *stack {
	t.Helper()
	return startStackWith(t, concierge.Params{SupervisorBinary: supervisord})
}

// startStackWith is startStack with the concierge's supervisord options
// (and capacity, default 4 cores) from p.
func startStackWith(t *testing.T, p concierge.Params) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cp := portiertest.Start(t, portiertest.Options{Params: portier.Params{ClusterToken: "tok",
		Live: portier.LiveParams{HeartbeatInterval: 200 * time.Millisecond}}})
	store, hs := cp.Store, cp.HTTP
	u, _ := store.CreateUser(ctx, "u", "password-123", models.RoleOperator)
	st, err := store.CreateStream(ctx, "live", "s", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	p.Control, p.ClusterToken, p.Name = hs.URL, "tok", "c1"
	if p.Capacity == 0 {
		p.Capacity = 4
	}
	if p.DataDir == "" {
		p.DataDir = t.TempDir()
	}
	p.DrainTimeout, p.Logger = time.Second, slog.New(slog.DiscardHandler)
	c, err := concierge.New(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &stack{store: store, stream: st.ID, hs: hs, c: c}
}

func (s *stack) task(t *testing.T, args ...string) int64 {
	t.Helper()
	tk, _, err := s.store.CreateCompiledTask(context.Background(), &models.Task{StreamID: s.stream, Type: models.TypeRestream,
		DesiredState: models.DesiredRunning, State: models.TaskPending, Description: models.TaskDescription{Command: "sleep", Args: args, Cost: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

func (s *stack) waitTask(t *testing.T, id int64, what string, cond func(*models.Task) bool) *models.Task {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur, err := s.store.TaskByID(context.Background(), id)
		if err == nil && cond(cur) {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, cur)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// taskPIDs finds the live processes of a task by their PORTIER_TASK_ID,
// among this test process's descendants only: other packages' tests run
// concierges with tasks of the same ids at the same time.
func taskPIDs(id int64) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	needle := []byte("PORTIER_TASK_ID=" + strconv.FormatInt(id, 10) + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		st, err2 := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || err2 != nil || !bytes.Contains(env, needle) {
			continue
		}
		if f := statFields(st); len(f) > 1 && f[0] != "Z" && descendsFromUs(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields are the fields of /proc/PID/stat after the command name (which
// may hold spaces): state, ppid, ….
func statFields(st []byte) []string {
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(st[i+1:]))
}

// descendsFromUs reports whether pid is a descendant of this process.
func descendsFromUs(pid int) bool {
	self := os.Getpid()
	for range 64 {
		if pid == self {
			return true
		}
		if pid <= 1 {
			return false
		}
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		f := statFields(st)
		if len(f) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			return false
		}
	}
	return false
}

// TestSupervisordDeathAndBadArguments: a task whose argument cannot pass
// through supervisord fails with a reason (never a shell); when the
// embedded supervisord is killed, the running task comes back with exactly
// one process.
func TestSupervisordDeathAndBadArguments(t *testing.T) {
	for _, sv := range []struct {
		name   string
		binary func(testing.TB) string
	}{{"ochinchina", supervisortest.Ochinchina}, {"python", supervisortest.Python}} {
		t.Run(sv.name, func(t *testing.T) {
			s := startStack(t, sv.binary(t))
			bad := s.task(t, "30", "x\ny")
			good := s.task(t, "300")
			cur := s.waitTask(t, bad, "bad task failed", func(tk *models.Task) bool { return tk.State == models.TaskFailed })
			if !strings.Contains(cur.LastError, "cannot be passed safely") {
				t.Fatalf("bad task error %q", cur.LastError)
			}
			s.waitTask(t, good, "good task running", func(tk *models.Task) bool { return tk.State == models.TaskRunning })
			before := taskPIDs(good)
			if len(before) != 1 {
				t.Fatalf("%d processes for the task, want 1", len(before))
			}
			t0 := time.Now()
			if err := syscall.Kill(s.c.SupervisorPID(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				pids := taskPIDs(good)
				if len(pids) > 1 {
					t.Fatalf("%d processes for the task after the supervisord kill", len(pids))
				}
				if len(pids) == 1 && pids[0] != before[0] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("task not restarted after the supervisord kill (processes %v, before %v)", pids, before)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s: task process back %v after supervisord was killed", sv.name, time.Since(t0).Round(time.Millisecond))
			s.waitTask(t, good, "running again", func(tk *models.Task) bool { return tk.State == models.TaskRunning })
		})
	}
}

// TestCutOffStopsTasks: a concierge that cannot reach the control plane for
// most of a lease stops its tasks (the control plane will give them to
// another concierge), and runs them again when the control plane returns
// before reassigning them.
func TestCutOffStopsTasks(t *testing.T) {
	s := startStack(t, supervisortest.Python(t))
	id := s.task(t, "300")
	s.waitTask(t, id, "running", func(tk *models.Task) bool { return tk.State == models.TaskRunning })
	// Cut the concierge off: its connections to the control plane fail.
	s.hs.Config.SetKeepAlivesEnabled(false)
	s.hs.CloseClientConnections()
	l := s.hs.Listener
	addr := l.Addr().String()
	l.Close()
	t0 := time.Now()
	for len(taskPIDs(id)) != 0 {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("task still running 10 s after the control plane became unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("cut off: task stopped %v after the control plane went away (lease 1 s)", time.Since(t0).Round(time.Millisecond))
	// Bring the control plane back on the same address.
	nl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	back := &http.Server{Handler: s.hs.Config.Handler}
	go back.Serve(nl)
	t.Cleanup(func() { back.Close() })
	s.waitTask(t, id, "running again after the control plane returned", func(tk *models.Task) bool {
		return tk.State == models.TaskRunning && len(taskPIDs(id)) == 1
	})
}

// TestExternalSupervisord drives an operator's Python supervisord over
// inet_http_server (--supervisor-url with --supervisor-include-dir) and
// leaves the operator's own program alone.
func TestExternalSupervisord(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	include := filepath.Join(dir, "conf.d")
	os.MkdirAll(include, 0o755)
	conf := "[inet_http_server]\nport=" + addr + "\n[supervisord]\nnodaemon=true\nlogfile=" + dir + "/sv.log\npidfile=" + dir + "/sv.pid\n" +
		"[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n" +
		"[program:operator-job]\ncommand=/bin/sleep 300\nautostart=true\nstopsignal=TERM\n" +
		"[include]\nfiles=" + include + "/*.conf\n"
	if err := os.WriteFile(filepath.Join(dir, "sv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sv := exec.Command(supervisortest.Python(t), "-c", filepath.Join(dir, "sv.conf"))
	if err := sv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sv.Process.Signal(syscall.SIGTERM); sv.Wait() })
	cl, _ := supervisor.Dial("http://" + addr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if pi, err := cl.ProcessInfo(context.Background(), "operator-job"); err == nil && pi.State == supervisor.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("operator's supervisord did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	opPID := func() int { pi, _ := cl.ProcessInfo(context.Background(), "operator-job"); return pi.PID }
	before := opPID()

	s := startStackWith(t, concierge.Params{SupervisorURL: "http://" + addr, SupervisorIncludeDir: include})
	id := s.task(t, "300")
	s.waitTask(t, id, "running under the operator's supervisord", func(tk *models.Task) bool { return tk.State == models.TaskRunning })
	if err := s.store.StopCompiledTask(context.Background(), id, "test"); err != nil {
		t.Fatal(err)
	}
	s.waitTask(t, id, "stopped", func(tk *models.Task) bool { return tk.State == models.TaskStopped && len(taskPIDs(id)) == 0 })
	if after := opPID(); after != before || after == 0 {
		t.Fatalf("operator's program pid %d → %d: it was touched", before, after)
	}
	if files, _ := os.ReadDir(include); len(files) != 0 {
		t.Fatalf("program files left in the include dir: %v", files)
	}
}
