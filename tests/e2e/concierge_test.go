package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/portiertest"
	"github.com/portier/portier/tests/peers"
)

// A concierge in these tests is a real `portier concierge` process (so
// kill -9 is real) with its own embedded supervisord.
type cgChildParams struct {
	Control, Token, Name, DataDir, Supervisord string
	Capacity                                   int
}

// cgLogger sends the control plane's warnings to the test log.
func cgLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(cgTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type cgTestWriter struct{ t *testing.T }

func (w cgTestWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func cgTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type cgProc struct {
	p    cgChildParams
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	mu   *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

func cgStart(t *testing.T, p cgChildParams) *cgProc {
	t.Helper()
	cp := &cgProc{p: p, done: make(chan struct{}), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cp.cmd = exec.Command(peers.PortierBinary(t), "concierge", "--control", p.Control, "--cluster-token", p.Token,
		"--name", p.Name, "--data-dir", p.DataDir, "--supervisord", p.Supervisord, "--capacity", strconv.Itoa(p.Capacity),
		"--http-addr", "127.0.0.1:0", "--drain-timeout", "15s")
	w := lockedWriter{cp.mu, cp.log}
	cp.cmd.Stdout, cp.cmd.Stderr = w, w
	if err := cp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cp.cmd.Wait(); close(cp.done) }()
	t.Cleanup(func() {
		cp.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("concierge %s log:\n%s", p.Name, cgTail(cp.logText(), 6000))
		}
	})
	return cp
}

// supervisorMarker is the PORTIER_SUPERVISOR value the concierge's
// embedded supervisord gives its programs (a hash of its directory).
func (cp *cgProc) supervisorMarker(t *testing.T) string {
	t.Helper()
	return dataDirMarker(t, cp.p.DataDir)
}

// dataDirMarker is the PORTIER_SUPERVISOR value of the task processes of
// the concierge with data directory dir.
func dataDirMarker(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(dir, "supervisord"))
	if err != nil {
		t.Fatal(err)
	}
	return supervisor.Marker(abs)
}

func (cp *cgProc) logText() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.log.String()
}

// signal sends sig to the concierge process (by its own PID) and waits for it.
func (cp *cgProc) signal(sig syscall.Signal) {
	select {
	case <-cp.done:
		return
	default:
	}
	_ = cp.cmd.Process.Signal(sig)
	select {
	case <-cp.done:
	case <-time.After(30 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.done
	}
}

// taskProcs lists live (non-zombie) processes running task id, found by the
// PORTIER_TASK_ID every task process carries. With markers (see
// supervisorMarker), only the processes of those concierges: task ids
// restart at 1 in every test's database, and other tests on the same
// machine may run a task 1 at the same time.
func taskProcs(id int64, markers ...string) []int {
	ents, _ := os.ReadDir("/proc")
	needle := []byte("PORTIER_TASK_ID=" + strconv.FormatInt(id, 10) + "\x00")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, needle) {
			continue
		}
		if len(markers) > 0 && !slices.ContainsFunc(markers, func(m string) bool {
			return bytes.Contains(env, []byte(supervisor.MarkerEnv+"="+m+"\x00"))
		}) {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// procCounter samples taskProcs until stopped and records the most runners
// seen at once and for how long more than one ran.
type procCounter struct {
	mu      sync.Mutex
	max     int
	overlap time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func countProcs(id int64, markers ...string) *procCounter {
	pc := &procCounter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pc.done)
		last := time.Now()
		for {
			n := len(taskProcs(id, markers...))
			now := time.Now()
			pc.mu.Lock()
			pc.max = max(pc.max, n)
			if n > 1 {
				pc.overlap += now.Sub(last)
			}
			pc.mu.Unlock()
			last = now
			select {
			case <-pc.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return pc
}

func (pc *procCounter) result() (int, time.Duration) {
	close(pc.stop)
	<-pc.done
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.max, pc.overlap
}

func cgWait(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(t0)
}

// TestConciergeFailover runs a real control plane (SQLite) and two
// `portier concierge` processes, one with ochinchina's supervisord and one with Python's. A task
// runs `sleep`; kill -9 of the concierge running it moves it to the other
// within 10 s with never two runners; the killed concierge comes back and
// runs nothing stale; SIGTERM drains the task over to the other concierge;
// a stop request stops it everywhere.
func TestConciergeFailover(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hb := time.Second // the default: lease 5 s
	cp := portiertest.Start(t, portiertest.Options{Params: portier.Params{ClusterToken: "cg-token", Logger: cgLogger(t),
		Live: portier.LiveParams{HeartbeatInterval: hb}}})
	store, hs := cp.Store, cp.HTTP
	u, err := store.CreateUser(ctx, "cg", "cg-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.CreateStream(ctx, "live", "cg", u.ID)
	if err != nil {
		t.Fatal(err)
	}

	base := t.TempDir()
	params := map[string]cgChildParams{
		"cg-ochinchina": {Control: hs.URL, Token: "cg-token", Name: "cg-ochinchina", DataDir: filepath.Join(base, "a"), Supervisord: supervisortest.Ochinchina(t), Capacity: 4},
		"cg-python":     {Control: hs.URL, Token: "cg-token", Name: "cg-python", DataDir: filepath.Join(base, "b"), Supervisord: supervisortest.Python(t), Capacity: 4},
	}
	procs := map[string]*cgProc{}
	var markers []string // this test's task processes carry one of these
	for name, p := range params {
		procs[name] = cgStart(t, p)
		markers = append(markers, procs[name].supervisorMarker(t))
	}
	cgWait(t, "both concierges registered", 30*time.Second, func() bool {
		ns, _ := store.ListNodes(ctx, models.NodeRoleConcierge)
		return len(ns) == 2
	})

	tk, _, err := store.CreateCompiledTask(ctx, &models.Task{StreamID: st.ID, Type: models.TypeRestream, DesiredState: models.DesiredRunning,
		State: models.TaskPending, Description: models.TaskDescription{Command: "sleep", Args: []string{"300"}, Cost: 1}})
	if err != nil {
		t.Fatal(err)
	}
	load := func() *models.Task {
		cur, err := store.TaskByID(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		return cur
	}
	took := cgWait(t, "task running", 20*time.Second, func() bool { return load().State == models.TaskRunning })
	first := load()
	t.Logf("task %d running on %s (epoch %d) %v after creation", tk.ID, first.NodeName, first.Epoch, took.Round(time.Millisecond))
	if n := len(taskProcs(tk.ID, markers...)); n != 1 {
		t.Fatalf("%d processes run the task, want 1", n)
	}

	// kill -9 the concierge running it.
	other := "cg-python"
	if first.NodeName == "cg-python" {
		other = "cg-ochinchina"
	}
	pc := countProcs(tk.ID, markers...)
	t0 := time.Now()
	procs[first.NodeName].signal(syscall.SIGKILL)
	cgWait(t, "task running on the other concierge", 20*time.Second, func() bool {
		cur := load()
		return cur.NodeName == other && cur.State == models.TaskRunning
	})
	failover := time.Since(t0)
	cgWait(t, "one runner", 5*time.Second, func() bool { return len(taskProcs(tk.ID, markers...)) == 1 })
	maxRunners, overlap := pc.result()
	second := load()
	t.Logf("kill -9 of %s: task running on %s (epoch %d) after %v; max runners at once %d, overlap %v",
		first.NodeName, other, second.Epoch, failover.Round(time.Millisecond), maxRunners, overlap)
	if failover > 10*time.Second {
		t.Errorf("failover took %v, want ≤ 10s", failover)
	}
	if maxRunners > 1 {
		t.Errorf("%d runners at once during failover (overlap %v), want 1", maxRunners, overlap)
	}
	if second.Epoch <= first.Epoch {
		t.Errorf("epoch %d after failover, want > %d", second.Epoch, first.Epoch)
	}

	// The killed concierge comes back: it must run nothing stale.
	procs[first.NodeName] = cgStart(t, params[first.NodeName])
	cgWait(t, "restarted concierge heartbeating", 30*time.Second, func() bool {
		n, err := store.NodeByName(ctx, first.NodeName)
		return err == nil && n.LastHeartbeat != nil && time.Since(*n.LastHeartbeat) < hb
	})
	pc = countProcs(tk.ID, markers...)
	time.Sleep(3 * hb) // observation window: a stale runner would start here
	if m, _ := pc.result(); m != 1 {
		t.Fatalf("%d runners after the killed concierge came back, want 1", m)
	}
	if cur := load(); cur.NodeName != other || cur.Epoch != second.Epoch {
		t.Fatalf("task moved after the comeback: %+v", cur)
	}

	// SIGTERM drains: the task starts on the restarted concierge before the
	// draining one stops its process.
	pc = countProcs(tk.ID, markers...)
	t0 = time.Now()
	procs[other].signal(syscall.SIGTERM)
	drainExit := time.Since(t0)
	third := load()
	maxRunners, overlap = pc.result()
	t.Logf("SIGTERM drain of %s: exited after %v; task on %s state %s epoch %d; max runners %d, overlap %v",
		other, drainExit.Round(time.Millisecond), third.NodeName, third.State, third.Epoch, maxRunners, overlap)
	if third.NodeName != first.NodeName || third.State != models.TaskRunning {
		t.Fatalf("after drain the task is %s on %q, want running on %s", third.State, third.NodeName, first.NodeName)
	}
	if n := len(taskProcs(tk.ID, markers...)); n != 1 {
		t.Fatalf("%d runners after drain, want 1", n)
	}

	// Stop: desired state stopped ends every runner.
	if err := store.StopCompiledTask(ctx, tk.ID, "test stop"); err != nil {
		t.Fatal(err)
	}
	took = cgWait(t, "task stopped", 15*time.Second, func() bool { return load().State == models.TaskStopped && len(taskProcs(tk.ID, markers...)) == 0 })
	t.Logf("stop request to no runner and state stopped: %v", took.Round(time.Millisecond))
}
