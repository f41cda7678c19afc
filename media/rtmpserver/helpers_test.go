package rtmpserver

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/stream"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testEnv struct {
	hub  *stream.Hub
	srv  *Server
	logs *lockedBuffer
	url  string // rtmp://127.0.0.1:port
}

func startServer(t *testing.T, p Params) *testEnv {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hub := stream.NewHub(stream.HubParams{Logger: log, PublisherGrace: -1})
	p.Hub = hub
	p.Addr = "127.0.0.1:0"
	p.Logger = log.With("relay", "test")
	srv, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		hub.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testEnv{hub: hub, srv: srv, logs: logs, url: "rtmp://" + srv.Addr().String()}
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for this test: %v", name, err)
	}
	return p
}

// startFFmpegPublish publishes a lavfi H.264+AAC test stream to url in the
// background; the process is stopped at cleanup.
func startFFmpegPublish(t *testing.T, url string, seconds string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(tool(t, "ffmpeg"), "-hide_banner", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", seconds,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-c:a", "aac", "-f", "flv", url)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, out
}

// runTool runs a command bounded by timeout and returns its combined output.
func runTool(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Second
	err := cmd.Run()
	return out.String(), err
}

func waitLive(t *testing.T, hub *stream.Hub, path string) stream.StreamInfo {
	t.Helper()
	var si stream.StreamInfo
	testutil.Eventually(t, 20*time.Second, path+" to be live with codec info", func() bool {
		var ok bool
		si, ok = hub.Stream(path)
		return ok && si.Live && si.Codec.VideoCodec != "" && si.Codec.AudioCodec != "" && si.BytesIn > 20000
	})
	return si
}

// lastLines returns the last n lines of s (a tool's output in a failure).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
