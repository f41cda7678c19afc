package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/portiertest"
	"github.com/portier/portier/tests/peers"
)

// TestConciergeRelay: a task reads its stream from the relay its concierge
// names (`portier concierge --relay-rtmp`), not from the control plane's
// fallback (`serve --relay-rtmp-url`). The control plane's relay is an
// origin; the concierge (a real process with a real supervisord) names an
// edge. The record task's ffmpeg runs with the edge in its command line,
// the edge has it as an internal player, and its recording grows.
func TestConciergeRelay(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	originAddr := peers.FreeAddr(t)
	recDir := t.TempDir()
	cp := portiertest.Start(t, portiertest.Options{Params: portier.Params{ClusterToken: relayClusterToken, Logger: testLogger(t, "control"),
		Live: portier.LiveParams{HeartbeatInterval: 300 * time.Millisecond,
			Compile: compile.Env{FFmpeg: "ffmpeg", RelayRTMPURL: "rtmp://" + originAddr, RecordDir: recDir}}}})
	store, hs := cp.Store, cp.HTTP

	u, err := store.CreateUser(ctx, "rl", "rl-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.CreateStream(ctx, "live", "near", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "rec", Enabled: true,
		Spec: models.MustJSON(models.RecordSpec{SegmentSeconds: 2, Format: "ts"})}
	if err := store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "rl-origin", RTMPAddr: originAddr, ControlURL: hs.URL})
	edge := startRelay(t, relay.Params{Role: relay.RoleEdge, Name: "rl-edge", ControlURL: hs.URL})
	edgeAddr := edge.RTMPAddr().String()

	marker := startConciergeProc(t, hs.URL, "rl-concierge", "--relay-rtmp", "rtmp://"+edgeAddr)

	// Publish to the origin: the control plane's relay has the stream, so
	// a task that read from there would work too; only the command line
	// and the edge's players tell which one it reads.
	pub := peers.Publish(t, ctx, "rtmp://"+originAddr+"/live/near?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()

	var task *models.Task
	testutil.Eventually(t, 60*time.Second, "the record task running", func() bool {
		ts, _, err := store.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
		if err != nil || len(ts) != 1 {
			return false
		}
		task = &ts[0]
		return task.State == models.TaskRunning
	})
	var cmdline string
	testutil.Eventually(t, 10*time.Second, "the task's ffmpeg process", func() bool {
		for _, pid := range taskProcs(task.ID, marker) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if err == nil && bytes.Contains(b, []byte("ffmpeg")) {
				cmdline = strings.ReplaceAll(string(b), "\x00", " ")
				return true
			}
		}
		return false
	})
	t.Logf("task command line: %s", cmdline)
	if !strings.Contains(cmdline, " -i rtmp://"+edgeAddr+"/live/near?") {
		t.Fatalf("the task does not read from the concierge's relay %s: %s", edgeAddr, cmdline)
	}
	if strings.Contains(cmdline, originAddr) {
		t.Fatalf("the task still names the control plane's relay %s: %s", originAddr, cmdline)
	}
	testutil.Eventually(t, 20*time.Second, "the edge serving the task as an internal player", func() bool {
		s, ok := findStream(edge.Streams(), "live/near")
		return ok && s.InternalPlayers >= 1
	})
	testutil.Eventually(t, 20*time.Second, "a recording from the edge", func() bool {
		files, _ := filepath.Glob(filepath.Join(compile.RecordingDir(recDir, st.ID), "*.ts"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() > 16<<10 {
				return true
			}
		}
		return false
	})
}

// startConciergeProc runs a real `portier concierge` (Python supervisord)
// named name against control with the relay tests' cluster token and extra
// options; it is stopped with SIGINT at cleanup, and its log shown if the
// test failed. It returns the supervisor marker of its task processes.
func startConciergeProc(t *testing.T, control, name string, extra ...string) (marker string) {
	t.Helper()
	dataDir := t.TempDir()
	args := append([]string{"concierge", "--control", control, "--cluster-token", relayClusterToken,
		"--name", name, "--data-dir", dataDir, "--supervisord", supervisortest.Python(t),
		"--http-addr", "127.0.0.1:0", "--drain-timeout", "2s"}, extra...)
	cmd := exec.Command(peers.PortierBinary(t), args...)
	clog := lockedWriter{mu: &sync.Mutex{}, b: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = clog, clog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			clog.mu.Lock()
			t.Logf("%s log:\n%s", name, cgTail(clog.b.String(), 6000))
			clog.mu.Unlock()
		}
	})
	return dataDirMarker(t, dataDir)
}
