package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/tests/peers"
)

// TestRunTaskSecrets is a restream in `portier run` whose target refuses
// the connection: ffmpeg's log names the target URL with its key
// ("rtmp://…/KEY: Connection refused"). The task's last_error and log tail
// that the API shows carry no restream key and no stream key (the key's
// place shows the mask), and the files that hold them on disk are private:
// the SQLite database 0600, the concierge's directories 0700, the
// supervisord config, the task's program file and its log 0600.
func TestRunTaskSecrets(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	a := startAllInOne(t)

	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "sec1"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	closed := peers.FreeAddr(t) // nothing listens: the target refuses
	const key = "live_4711_SeCrEtRestreamKey"
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "restream", "name": "refused", "target": "rtmp://" + closed + "/live2", "key": key, "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create restream config: HTTP %d %v", code, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{})

	var task apiTask
	testutil.Eventually(t, 60*time.Second, "the restream task fails with ffmpeg's log", func() bool {
		ts := a.tasks(t, st.ID)
		if len(ts) != 1 {
			return false
		}
		task = ts[0]
		return task.LastError != "" && strings.Contains(task.LogTail, "Connection refused")
	})
	t.Logf("last_error %q\nlog_tail %q", task.LastError, task.LogTail)
	for _, secret := range []string{key, st.Key} {
		for what, text := range map[string]string{"last_error": task.LastError, "log_tail": task.LogTail} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows a key: %q", what, text)
			}
		}
	}
	// The line that named the key is there, with the mask in its place.
	if !strings.Contains(task.LogTail, "rtmp://"+closed+"/live2/***") {
		t.Errorf("log tail lacks the redacted target URL: %q", task.LogTail)
	}
	var one apiTask
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/tasks/%d", task.ID), nil, &one); code != 200 ||
		strings.Contains(one.LogTail+one.LastError, key) {
		t.Errorf("GET /api/v1/tasks/%d: HTTP %d, shows the key: %v", task.ID, code, strings.Contains(one.LogTail+one.LastError, key))
	}

	// File modes after a real task ran.
	wantMode := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	wantMode(filepath.Join(a.dir, "portier.db"), 0o600)
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(filepath.Join(a.dir, "portier.db"+side)); err == nil {
			wantMode(filepath.Join(a.dir, "portier.db"+side), 0o600)
		}
	}
	sv := filepath.Join(a.dir, "concierge", "supervisord")
	for _, d := range []string{filepath.Join(a.dir, "concierge"), sv, filepath.Join(sv, "programs"), filepath.Join(sv, "logs")} {
		wantMode(d, 0o700)
	}
	wantMode(filepath.Join(sv, "supervisord.conf"), 0o600)
	progs, _ := filepath.Glob(filepath.Join(sv, "programs", "task-*.conf"))
	logs, _ := filepath.Glob(filepath.Join(sv, "logs", "task-*.log"))
	if len(progs) == 0 || len(logs) == 0 {
		t.Fatalf("no program file (%v) or task log (%v)", progs, logs)
	}
	for _, f := range append(progs, logs...) {
		wantMode(f, 0o600)
	}
	// The program file does hold the key: that is why it is private.
	if b, _ := os.ReadFile(progs[0]); !bytes.Contains(b, []byte(key)) {
		t.Errorf("program file %s does not hold the task's target (is it the restream?)", progs[0])
	}
}

// TestConciergeDataDirLock runs real `portier concierge` processes: a
// second one on a data dir in use exits non-zero naming the first one's
// PID and --data-dir, and one whose --http-addr is taken exits non-zero
// without leaving a supervisord (no process mentions its data dir).
func TestConciergeDataDirLock(t *testing.T) {
	bin := peers.PortierBinary(t)
	sv := supervisortest.Python(t)
	dir := t.TempDir()
	httpA := peers.FreeAddr(t)
	// No control plane: a concierge locks its data dir and starts
	// supervisord before it registers (it retries registering).
	args := func(dataDir, httpAddr string) []string {
		return []string{"concierge", "--control", "http://127.0.0.1:1", "--cluster-token", "t", "--name", "lock-test",
			"--data-dir", dataDir, "--supervisord", sv, "--http-addr", httpAddr}
	}
	first := exec.Command(bin, args(dir, httpA)...)
	var firstLog bytes.Buffer
	first.Stdout, first.Stderr = &firstLog, &firstLog
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	go func() { first.Wait(); close(firstDone) }()
	t.Cleanup(func() {
		_ = first.Process.Signal(os.Interrupt)
		select {
		case <-firstDone:
		case <-time.After(30 * time.Second):
			_ = first.Process.Kill()
			<-firstDone
		}
	})
	testutil.Eventually(t, 20*time.Second, "the first concierge serves /healthz", func() bool {
		resp, err := http.Get("http://" + httpA + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	run := func(args []string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	out, err := run(args(dir, peers.FreeAddr(t)))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Fatalf("second concierge on the same data dir: %v, want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{"process " + strconv.Itoa(first.Process.Pid), "--data-dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("second concierge's error does not say %q:\n%s", want, out)
		}
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir2 := t.TempDir()
	out, err = run(args(dir2, taken.Addr().String()))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 || !strings.Contains(out, "--http-addr") {
		t.Fatalf("concierge with a taken --http-addr: %v, want a non-zero exit naming --http-addr\n%s", err, out)
	}
	if pids := procsMentioning(dir2); len(pids) > 0 {
		t.Fatalf("processes left running for the failed concierge's data dir: %v", pids)
	}
}

// procsMentioning lists the PIDs of live processes whose command line
// contains s.
func procsMentioning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(s)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && bytes.Contains(stat, []byte(") Z ")) {
			continue // a zombie is not running
		}
		out = append(out, pid)
	}
	return out
}

// TestRunDataDirLock: a second `portier run` on a data dir in use exits
// non-zero naming the first one's PID and --data-dir (before it touches
// the database or starts a supervisord).
func TestRunDataDirLock(t *testing.T) {
	a := startAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, peers.PortierBinary(t), "run", "--data-dir", a.dir, "--http-addr", peers.FreeAddr(t),
		"--rtmp-addr", peers.FreeAddr(t), "--rtsp-addr", "", "--name", "second").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Fatalf("second portier run on the same data dir: %v, want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{"process " + strconv.Itoa(a.proc.Process.Pid), "--data-dir", "portier run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error does not say %q:\n%s", want, out)
		}
	}
}

// TestRunNoLoopbackTrust: `portier run` trusts no caller for being on
// loopback (behind a reverse proxy on the same host, everyone is): the
// concierge API (task command lines with keys) and the node API answer 401
// without the cluster token, and so do the media-server hooks unless
// --hook-allow lists the caller's network.
func TestRunNoLoopbackTrust(t *testing.T) {
	nginxPublish := func(a *allInOne, key string) int {
		t.Helper()
		form := url.Values{"call": {"publish"}, "app": {"live"}, "name": {"lo1"}, "addr": {"127.0.0.1"}, "key": {key}}
		resp, err := http.Post("http://"+a.http+"/hooks/nginx-rtmp", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	anonymous := func(a *allInOne) {
		t.Helper()
		for _, p := range []string{"/internal/v1/concierge/e2e-concierge/assignments?wait_ms=0", "/internal/v1/nodes", "/internal/v1/directory/live/lo1"} {
			resp, err := http.Get("http://" + a.http + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("anonymous GET %s from loopback: HTTP %d %s, want 401", p, resp.StatusCode, body)
			}
		}
	}
	createStream := func(a *allInOne) string {
		t.Helper()
		var st apiStream
		if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "lo1"}, &st); code != http.StatusCreated {
			t.Fatalf("create stream: HTTP %d", code)
		}
		return st.Key
	}

	a := startAllInOne(t)
	anonymous(a)
	if code := nginxPublish(a, createStream(a)); code != http.StatusUnauthorized {
		t.Errorf("nginx-rtmp hook from loopback without token or --hook-allow: HTTP %d, want 401", code)
	}

	b := startAllInOne(t, "--hook-allow", "127.0.0.1/32")
	anonymous(b) // --hook-allow opens the hooks only
	if code := nginxPublish(b, createStream(b)); code != http.StatusOK {
		t.Errorf("nginx-rtmp hook from loopback with --hook-allow 127.0.0.1/32: HTTP %d, want 200", code)
	}
}
