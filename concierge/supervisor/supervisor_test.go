package supervisor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
)

type flavorCase struct {
	name   string
	binary func(testing.TB) string
	want   supervisor.Flavor
}

var flavors = []flavorCase{
	{"ochinchina", supervisortest.Ochinchina, supervisor.FlavorOchinchina},
	{"python", supervisortest.Python, supervisor.FlavorPython},
}

func startEmbedded(t *testing.T, fc flavorCase, onRestart func()) *supervisor.Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := supervisor.StartEmbedded(ctx, supervisor.EmbeddedParams{Binary: fc.binary(t), Dir: t.TempDir(), OnRestart: onRestart})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(10 * time.Second) })
	return e
}

func stateOf(ctx context.Context, d *supervisor.Driver, name string) (supervisor.ProcessInfo, bool, error) {
	all, err := d.List(ctx)
	if err != nil {
		return supervisor.ProcessInfo{}, false, err
	}
	pi, ok := all[name]
	return pi, ok, nil
}

// TestDriverLifecycle adds a program running sleep, sees it RUNNING, reads
// its log tail, stops it, and removes it, against each real supervisord.
func TestDriverLifecycle(t *testing.T) {
	for _, fc := range flavors {
		t.Run(fc.name, func(t *testing.T) {
			ctx := context.Background()
			e := startEmbedded(t, fc, nil)
			c, err := supervisor.Dial(e.URL())
			if err != nil {
				t.Fatal(err)
			}
			if f, err := c.Flavor(ctx); err != nil || f != fc.want {
				t.Fatalf("flavor = %v, %v; want %v", f, err, fc.want)
			}
			d := supervisor.NewDriver(c, e.IncludeDir())
			name := "task-7-e1"
			p := supervisor.Program{
				Name:         name,
				Argv:         []string{"/bin/sh", "-c", "echo started-ok; exec sleep 30"},
				Env:          map[string]string{supervisor.MarkerEnv: e.Marker()},
				StopWaitSecs: 5,
				LogFile:      filepath.Join(e.LogDir(), name+".log"),
			}
			if err := d.Add(ctx, p); err != nil {
				t.Fatal(err)
			}
			if err := d.Add(ctx, p); err != nil { // idempotent
				t.Fatalf("second add: %v", err)
			}
			if pi, ok, err := stateOf(ctx, d, name); err != nil || !ok || pi.State.Alive() {
				t.Fatalf("after add: %+v ok=%v err=%v; want loaded and not started", pi, ok, err)
			}
			t0 := time.Now()
			if err := d.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			var pid int
			testutil.EventuallyErr(t, 10*time.Second, "RUNNING", func() (bool, error) {
				pi, _, err := stateOf(ctx, d, name)
				pid = pi.PID
				return pi.State == supervisor.StateRunning && pi.PID > 0, err
			})
			t.Logf("%s: start to RUNNING in %v", fc.name, time.Since(t0).Round(time.Millisecond))
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("pid %d not alive: %v", pid, err)
			}
			testutil.EventuallyErr(t, 5*time.Second, "log tail", func() (bool, error) {
				tail, err := d.Tail(ctx, name, 1024)
				return strings.Contains(tail, "started-ok"), err
			})
			t0 = time.Now()
			if err := d.Stop(ctx, name); err != nil {
				t.Fatal(err)
			}
			pi, _, err := stateOf(ctx, d, name)
			if err != nil || pi.State.Alive() {
				t.Fatalf("after stop: %+v err=%v", pi, err)
			}
			t.Logf("%s: stop took %v, state %v", fc.name, time.Since(t0).Round(time.Millisecond), pi.State)
			testutil.EventuallyErr(t, 5*time.Second, "process gone", func() (bool, error) { return syscall.Kill(pid, 0) != nil, nil })
			if err := d.Remove(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := stateOf(ctx, d, name); err != nil || ok {
				t.Fatalf("after remove: still listed=%v err=%v", ok, err)
			}
			if err := d.Remove(ctx, name); err != nil {
				t.Fatalf("second remove: %v", err)
			}
		})
	}
}

// TestQuotingRoundTrip runs printf with awkward arguments under each real
// supervisord and checks the process got exactly the argv we rendered.
func TestQuotingRoundTrip(t *testing.T) {
	args := []string{"a b", "it's", `say "hi"`, "100%", "%d %s", "x;y", "#z", "", "rtmp://h/app?key=a&b=c", "[0:v]scale=640:-2[v]", "tab\there", "$HOME", "`id`"}
	for _, fc := range flavors {
		t.Run(fc.name, func(t *testing.T) {
			ctx := context.Background()
			e := startEmbedded(t, fc, nil)
			c, _ := supervisor.Dial(e.URL())
			d := supervisor.NewDriver(c, e.IncludeDir())
			printf, err := exec.LookPath("printf")
			if err != nil {
				t.Fatal(err)
			}
			argv := append([]string{printf, "<%s>"}, args...)
			name := "quote"
			if err := d.Add(ctx, supervisor.Program{Name: name, Argv: argv, LogFile: filepath.Join(e.LogDir(), "q.log")}); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			for _, a := range args {
				fmt.Fprintf(&want, "<%s>", a)
			}
			testutil.EventuallyErr(t, 10*time.Second, "printf output", func() (bool, error) {
				tail, err := d.Tail(ctx, name, 4096)
				return tail == want.String(), fmt.Errorf("tail %q, err %v", tail, err)
			})
		})
	}
}

func TestQuoteCommandRefuses(t *testing.T) {
	bad := map[string]string{
		"newline":        "a\nb",
		"cr":             "a\rb",
		"backslash":      `a\b`,
		"both quotes":    `it's "x"`,
		"inline comment": "a ;b",
		"inline hash":    "a\t#b",
		"env":            "${HOME}",
	}
	for name, a := range bad {
		for _, f := range []supervisor.Flavor{supervisor.FlavorPython, supervisor.FlavorOchinchina} {
			if q, err := supervisor.QuoteCommand([]string{"/bin/true", a}, f); err == nil {
				t.Errorf("%s (%v): %q accepted as %q", name, f, a, q)
			}
		}
	}
	if _, err := supervisor.QuoteCommand([]string{"/bin/true", "%(here)s"}, supervisor.FlavorOchinchina); err == nil {
		t.Error("ochinchina: %(here)s accepted")
	}
	if q, err := supervisor.QuoteCommand([]string{"/bin/echo", "50%"}, supervisor.FlavorPython); err != nil || q != "/bin/echo 50%%" {
		t.Errorf("python percent: %q %v", q, err)
	}
	if _, err := supervisor.QuoteCommand(nil, supervisor.FlavorPython); err == nil {
		t.Error("empty argv accepted")
	}
	if _, err := (supervisor.Program{Name: "bad name", Argv: []string{"/bin/true"}}).Render(supervisor.FlavorPython); err == nil {
		t.Error("program name with a space accepted")
	}
}

// TestEmbeddedRestart kills supervisord with SIGKILL while a program runs:
// the program must not survive (no duplicate after restart), supervisord
// comes back, and the program can be started again.
func TestEmbeddedRestart(t *testing.T) {
	for _, fc := range flavors {
		t.Run(fc.name, func(t *testing.T) {
			ctx := context.Background()
			var restarted atomic.Int32
			e := startEmbedded(t, fc, func() { restarted.Add(1) })
			c, _ := supervisor.Dial(e.URL())
			d := supervisor.NewDriver(c, e.IncludeDir())
			name := "task-9-e2"
			if err := d.Add(ctx, supervisor.Program{Name: name, Argv: []string{"/bin/sleep", "30"},
				Env: map[string]string{supervisor.MarkerEnv: e.Marker()}, StopWaitSecs: 2}); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			var pid int
			testutil.EventuallyErr(t, 10*time.Second, "RUNNING", func() (bool, error) {
				pi, _, err := stateOf(ctx, d, name)
				pid = pi.PID
				return pi.State == supervisor.StateRunning, err
			})
			old := e.PID()
			t0 := time.Now()
			if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyErr(t, 20*time.Second, "restart", func() (bool, error) { return restarted.Load() == 1, nil })
			t.Logf("%s: supervisord back %v after SIGKILL", fc.name, time.Since(t0).Round(time.Millisecond))
			testutil.EventuallyErr(t, 5*time.Second, "old program gone", func() (bool, error) { return !alive(pid), nil })
			pi, ok, err := stateOf(ctx, d, name)
			if err != nil || !ok || pi.State.Alive() {
				t.Fatalf("after restart: %+v ok=%v err=%v; want loaded, not running", pi, ok, err)
			}
			if err := d.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyErr(t, 10*time.Second, "RUNNING again", func() (bool, error) {
				pi, _, err := stateOf(ctx, d, name)
				return pi.State == supervisor.StateRunning, err
			})
		})
	}
}

// alive is false for a missing or zombie process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestInetServer drives each supervisord over inet_http_server on a free
// 127.0.0.1 port, as with --supervisor-url http://127.0.0.1:PORT.
func TestInetServer(t *testing.T) {
	for _, fc := range flavors {
		t.Run(fc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			conf := fmt.Sprintf("[inet_http_server]\nport=%s\n[supervisord]\nnodaemon=true\nlogfile=%s/sv.log\npidfile=%s/sv.pid\n"+
				"[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"+
				"[include]\nfiles=%s/conf.d/*.conf\n", addr, dir, dir, dir)
			os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755)
			if err := os.WriteFile(filepath.Join(dir, "sv.conf"), []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(fc.binary(t), "-c", filepath.Join(dir, "sv.conf"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
			c, err := supervisor.Dial("http://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			testutil.EventuallyErr(t, 15*time.Second, "supervisord RUNNING", func() (bool, error) {
				st, err := c.GetState(ctx)
				return st == "RUNNING", err
			})
			d := supervisor.NewDriver(c, filepath.Join(dir, "conf.d"))
			if err := d.Add(ctx, supervisor.Program{Name: "inet", Argv: []string{"/bin/sleep", "30"}, StopWaitSecs: 2}); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(ctx, "inet"); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyErr(t, 10*time.Second, "RUNNING", func() (bool, error) {
				pi, err := c.ProcessInfo(ctx, "inet")
				return pi.State == supervisor.StateRunning, err
			})
			if err := d.Remove(ctx, "inet"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ProcessInfo(ctx, "inet"); err == nil {
				t.Fatal("program still known after Remove")
			}
		})
	}
}
