package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/portiertest"
	"github.com/portier/portier/tests/peers"
)

const relayClusterToken = "e2e-cluster-token"

// controlPlane is a real control plane (portier.New on SQLite) served by
// httptest, with one user and one stream.
type controlPlane struct {
	URL    string
	Store  *models.Store
	Stream *models.Stream
	UserID int64
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	ctx := context.Background()
	cp := portiertest.Start(t, portiertest.Options{NoBackground: true, Params: portier.Params{ClusterToken: relayClusterToken,
		Logger: testLogger(t, "control"), Live: portier.LiveParams{HeartbeatInterval: 200 * time.Millisecond}}})
	store, hs := cp.Store, cp.HTTP
	u, err := store.CreateUser(ctx, "owner", "owner-password-123", models.RoleOperator)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	st, err := store.CreateStream(ctx, "live", "foo", u.ID)
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return &controlPlane{URL: hs.URL, Store: store, Stream: st, UserID: u.ID}
}

// createStream adds another stream and returns its key.
func (cp *controlPlane) createStream(t *testing.T, name string) string {
	t.Helper()
	st, err := cp.Store.CreateStream(context.Background(), "live", name, cp.UserID)
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return st.PublishKey
}

// testLogger sends a component's logs to the test log at warn level, so
// failures show what the relay saw without flooding passing runs.
func testLogger(t *testing.T, component string) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("E2E_VERBOSE") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl})).With("c", component)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startRelay runs a relay in this process on 127.0.0.1:0 ports.
func startRelay(t *testing.T, p relay.Params) *relay.Relay {
	t.Helper()
	if p.RTMPAddr == "" {
		p.RTMPAddr = "127.0.0.1:0"
	}
	if p.HTTPAddr == "" {
		p.HTTPAddr = "127.0.0.1:0"
	}
	if p.ClusterToken == "" {
		p.ClusterToken = relayClusterToken
	}
	if p.Logger == nil {
		p.Logger = testLogger(t, p.Name)
	}
	r, err := relay.New(p)
	if err != nil {
		t.Fatalf("relay %s: %v", p.Name, err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("start relay %s: %v", p.Name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// relayProc is a `portier relay` process.
type relayProc struct {
	name     string
	cmd      *exec.Cmd
	rtmpAddr string
	httpAddr string
	done     chan struct{}
	log      *os.File
}

func startRelayProc(t *testing.T, name, role, control string, extra ...string) *relayProc {
	t.Helper()
	bin := peers.PortierBinary(t)
	rp := &relayProc{name: name, rtmpAddr: peers.FreeAddr(t), httpAddr: peers.FreeAddr(t), done: make(chan struct{})}
	args := append([]string{"relay", "--role", role, "--name", name, "--control", control,
		"--cluster-token", relayClusterToken, "--rtmp-addr", rp.rtmpAddr, "--http-addr", rp.httpAddr,
		"--rtsp-addr", peers.FreeAddr(t)}, extra...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	rp.log = logf
	rp.cmd = exec.Command(bin, args...)
	rp.cmd.Stdout, rp.cmd.Stderr = logf, logf
	if err := rp.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { rp.cmd.Wait(); close(rp.done) }()
	t.Cleanup(func() {
		rp.kill(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(string(b), 4000))
		}
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, "http://"+rp.httpAddr+"/healthz"); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s did not come up: %v\n%s", name, err, b)
	}
	return rp
}

// kill signals the process (by its own PID) and waits for it to exit.
func (rp *relayProc) kill(sig syscall.Signal) {
	select {
	case <-rp.done:
		return
	default:
	}
	_ = rp.cmd.Process.Signal(sig)
	select {
	case <-rp.done:
	case <-time.After(10 * time.Second):
		_ = rp.cmd.Process.Kill()
		<-rp.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitHTTP(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error %v)", url, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// relayStreams fetches a relay's /api/v1/streams.
func relayStreams(t *testing.T, httpAddr string) []relay.StreamStatus {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/v1/streams", nil)
	req.Header.Set("Authorization", "Bearer "+relayClusterToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("relay API: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Streams []relay.StreamStatus `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("relay API: %v", err)
	}
	return body.Streams
}

func findStream(list []relay.StreamStatus, path string) (relay.StreamStatus, bool) {
	for _, s := range list {
		if s.Path == path {
			return s, true
		}
	}
	return relay.StreamStatus{}, false
}

// metricValue reads one unlabelled-by-us metric from a relay's /metrics.
func metricValue(t *testing.T, httpAddr, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			return v, true
		}
	}
	return 0, false
}
