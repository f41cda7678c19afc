package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// Our relay in the fan-out table: a `portier relay --role origin` process
// (the sampler measures only it) authorising the publish against a
// `portier serve` control plane process on SQLite, both started fresh for
// every N. PORTIER_BENCH_WRITE_FRAMES=2 (or 3, 4, or a list: 2,3) adds a
// row for each with that --player-write-frames.
func init() {
	RegisterFanoutServer(FanoutServer{Name: "portier", Start: func(tb testing.TB) FanoutTarget {
		return startRelayTarget(tb, "portier relay")
	}})
	for n := range strings.SplitSeq(os.Getenv("PORTIER_BENCH_WRITE_FRAMES"), ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		RegisterFanoutServer(FanoutServer{Name: "portier-wf" + n, Start: func(tb testing.TB) FanoutTarget {
			return startRelayTarget(tb, "portier relay wf"+n, "--player-write-frames", n)
		}})
	}
}

// startRelayTarget starts a control plane and an origin relay with extra
// flags, and returns the relay as a fan-out target named server.
func startRelayTarget(tb testing.TB, server string, extra ...string) FanoutTarget {
	cp := startControlPlane(tb, "")
	key := cp.createStream(tb, "live", "bench")
	pprofAddr := peers.FreeAddr(tb)
	o := startRelayProc(tb, cp, "origin-1", "origin", append([]string{"--pprof-addr", pprofAddr}, extra...)...)
	return FanoutTarget{
		Server:     server,
		PublishURL: "rtmp://" + o.rtmpAddr + "/live/bench?key=" + key,
		PlayURL:    "rtmp://" + o.rtmpAddr + "/live/bench",
		FLVURL:     "http://" + o.httpAddr + "/live/bench.flv",
		PID:        o.PID(),
		PprofURL:   "http://" + pprofAddr,
	}
}

// TestMain removes the portier binary built for the benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	peers.RemovePortierBinary()
	os.Exit(code)
}

// portierProc is one `portier …` process started by a benchmark. Its
// output goes to a log file whose tail is logged when the benchmark fails;
// cleanup stops it by its PID.
type portierProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startPortier(tb testing.TB, name string, env []string, args ...string) *portierProc {
	tb.Helper()
	logPath := filepath.Join(tb.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatalf("log for %s: %v", name, err)
	}
	cmd := exec.Command(benchBinary(tb), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// If the benchmark binary dies without cleanups, take the process along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &portierProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if tb.Failed() {
			tb.Logf("--- %s log tail:\n%s", name, p.logTail(4000))
		}
	})
	return p
}

// benchBinary is the portier binary the benchmarks run: PORTIER_BENCH_BIN
// (another build to measure, e.g. main's for a before/after comparison) or
// one built from the working tree.
func benchBinary(tb testing.TB) string {
	if bin := os.Getenv("PORTIER_BENCH_BIN"); bin != "" {
		return bin
	}
	return peers.PortierBinary(tb)
}

// PID is the process id.
func (p *portierProc) PID() int { return p.cmd.Process.Pid }

// stop signals the process and waits for it to exit (SIGKILL after 10 s).
func (p *portierProc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *portierProc) logTail(n int64) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// controlPlane is a `portier serve` process with one operator user and an
// API token for it.
type controlPlane struct {
	URL          string
	ClusterToken string
	APIToken     string
	proc         *portierProc
}

// startControlPlane runs `portier user add`, `portier token add` and
// `portier serve` on dsn (a Postgres URL, or "" for a SQLite file in a
// temporary directory) and waits until /readyz answers.
func startControlPlane(tb testing.TB, dsn string) *controlPlane {
	tb.Helper()
	bin := peers.PortierBinary(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if dsn == "" {
		// The offline commands never create a database: make it as
		// `portier serve` would.
		dsn = filepath.Join(tb.TempDir(), "portier.db")
		s, err := models.Open(ctx, dsn)
		if err != nil {
			tb.Fatal(err)
		}
		s.Close()
	}
	add := exec.CommandContext(ctx, bin, "user", "add", "--database-url", dsn, "--username", "bench", "--role", "operator")
	add.Stdin = strings.NewReader("bench-password-123\n")
	if out, err := add.CombinedOutput(); err != nil {
		tb.Fatalf("portier user add: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	tok := exec.CommandContext(ctx, bin, "token", "add", "--database-url", dsn, "--username", "bench", "--scopes", "read,write")
	tok.Stderr = &stderr
	out, err := tok.Output()
	if err != nil {
		tb.Fatalf("portier token add: %v\n%s", err, stderr.String())
	}
	cp := &controlPlane{ClusterToken: randomToken(tb), APIToken: strings.TrimSpace(string(out))}
	addr := peers.FreeAddr(tb)
	cp.URL = "http://" + addr
	// The first-admin password comes from the environment so that serve
	// does not print a generated one.
	cp.proc = startPortier(tb, "control", []string{"PORTIER_ADMIN_PASSWORD=" + randomToken(tb)},
		"serve", "--database-url", dsn, "--http-addr", addr, "--cluster-token", cp.ClusterToken)
	if err := waitHTTPOK(ctx, cp.URL+"/readyz", cp.proc); err != nil {
		tb.Fatalf("control plane: %v\n%s", err, cp.proc.logTail(4000))
	}
	return cp
}

// createStream creates app/name through the REST API and returns its
// publish key.
func (cp *controlPlane) createStream(tb testing.TB, app, name string) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]string{"app": app, "name": name})
	req, _ := http.NewRequest(http.MethodPost, cp.URL+"/api/v1/streams", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cp.APIToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("create stream: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		tb.Fatalf("create stream: %s: %s", res.Status, b)
	}
	var st struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Key == "" {
		tb.Fatalf("create stream: no key in the answer (%v)", err)
	}
	return st.Key
}

// relayProc is a `portier relay` process.
type relayProc struct {
	*portierProc
	role     string
	rtmpAddr string
	httpAddr string
	token    string // the cluster token: the relay API needs it
}

// startRelayProc starts `portier relay --role role` on free loopback ports
// (no RTSP) against cp and waits until it is ready (registered).
func startRelayProc(tb testing.TB, cp *controlPlane, name, role string, extra ...string) *relayProc {
	tb.Helper()
	return startRelayProcAt(tb, cp, name, role, peers.FreeAddr(tb), peers.FreeAddr(tb), extra...)
}

// startRelayProcAt is startRelayProc on given addresses (a restarted origin
// comes back where it was).
func startRelayProcAt(tb testing.TB, cp *controlPlane, name, role, rtmpAddr, httpAddr string, extra ...string) *relayProc {
	tb.Helper()
	args := append([]string{"relay", "--role", role, "--name", name, "--control", cp.URL,
		"--cluster-token", cp.ClusterToken, "--rtmp-addr", rtmpAddr, "--http-addr", httpAddr,
		"--rtsp-addr", "", "--log-level", "warn"}, extra...)
	rp := &relayProc{portierProc: startPortier(tb, name, nil, args...), role: role, rtmpAddr: rtmpAddr, httpAddr: httpAddr, token: cp.ClusterToken}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitHTTPOK(ctx, "http://"+httpAddr+"/readyz", rp.portierProc); err != nil {
		tb.Fatalf("relay %s: %v\n%s", name, err, rp.logTail(4000))
	}
	return rp
}

// waitHTTPOK polls url until it answers 200, the process exits or ctx ends.
func waitHTTPOK(ctx context.Context, url string, p *portierProc) error {
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", res.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered", p.name, url)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func randomToken(tb testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
