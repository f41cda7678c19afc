package concierge_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := models.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := portier.New(portier.Params{Store: store, ClusterToken: "tok", Logger: slog.New(slog.DiscardHandler),
		Live: portier.LiveParams{HeartbeatInterval: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartBackground(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	u, _ := store.CreateUser(ctx, "u", "password-123", models.RoleOperator)
	st, err := store.CreateStream(ctx, "live", "s", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()

	c, err := concierge.New(concierge.Params{Control: hs.URL, ClusterToken: "tok", Name: "c1", Capacity: 2,
		DataDir: t.TempDir(), SupervisorBinary: supervisord, BackoffMin: 300 * time.Millisecond,
		DrainTimeout: time.Second, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- c.Run(runCtx) }()
	defer func() { stop(); <-done }()

	tk, _, err := store.CreateCompiledTask(ctx, &models.Task{StreamID: st.ID, Type: models.TypeRestream, DesiredState: models.DesiredRunning,
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
