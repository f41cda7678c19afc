package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// startUnnamedRelay starts `portier relay --role role` against control
// without --name (the default name), on free loopback ports.
func startUnnamedRelay(t *testing.T, label, role, control string, extra ...string) *relayProc {
	t.Helper()
	bin := peers.PortierBinary(t)
	rp := &relayProc{name: label, rtmpAddr: peers.FreeAddr(t), httpAddr: peers.FreeAddr(t), done: make(chan struct{})}
	args := append([]string{"relay", "--role", role, "--control", control, "--cluster-token", relayClusterToken,
		"--rtmp-addr", rp.rtmpAddr, "--http-addr", rp.httpAddr, "--rtsp-addr", ""}, extra...)
	logf, err := os.Create(filepath.Join(t.TempDir(), label+".log"))
	if err != nil {
		t.Fatal(err)
	}
	rp.log = logf
	rp.cmd = exec.Command(bin, args...)
	rp.cmd.Env = clusterEnv()
	rp.cmd.Stdout, rp.cmd.Stderr = logf, logf
	if err := rp.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	go func() { _ = rp.cmd.Wait(); close(rp.done) }()
	t.Cleanup(func() {
		rp.kill(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", label, tail(string(b), 4000))
		}
		logf.Close()
	})
	return rp
}

// clusterEnv is the environment without PORTIER_* settings of whoever runs
// the tests (a PORTIER_NAME would defeat the default-name test).
func clusterEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORTIER_") {
			env = append(env, kv)
		}
	}
	return env
}

func (rp *relayProc) logText() string {
	b, _ := os.ReadFile(rp.log.Name())
	return string(b)
}

// An origin and an edge started on one host without --name register under
// distinct default names, and a publish to the origin plays through the
// edge. A relay given the name of a live node of another role exits
// non-zero with a message that names the clash and the fix.
func TestClusterDefaultNamesAndNameClash(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	origin := startUnnamedRelay(t, "origin", "origin", cp.URL)
	edge := startUnnamedRelay(t, "edge", "edge", cp.URL)
	for _, rp := range []*relayProc{origin, edge} {
		if err := waitHTTP(ctx, "http://"+rp.httpAddr+"/healthz"); err != nil {
			t.Fatalf("%s did not come up: %v\n%s", rp.name, err, rp.logText())
		}
	}
	var nodes []models.Node
	testutil.Eventually(t, 20*time.Second, "origin and edge registered", func() bool {
		nodes, _ = cp.Store.ListNodes(ctx, "")
		return len(nodes) == 2
	})
	byRole := map[string]models.Node{}
	for _, n := range nodes {
		byRole[n.Role] = n
	}
	o, e := byRole[models.NodeRoleOrigin], byRole[models.NodeRoleEdge]
	host, _ := os.Hostname()
	if o.Name == e.Name || !strings.HasPrefix(o.Name, host+"-origin") || !strings.HasPrefix(e.Name, host+"-edge") {
		t.Fatalf("nodes %+v, want distinct default names %s-origin… and %s-edge…", nodes, host, host)
	}
	if o.RTMPAddress != origin.rtmpAddr || e.RTMPAddress != edge.rtmpAddr {
		t.Fatalf("registered addresses: origin %s edge %s, want %s and %s", o.RTMPAddress, e.RTMPAddress, origin.rtmpAddr, edge.rtmpAddr)
	}
	t.Logf("default names: origin %q, edge %q", o.Name, e.Name)

	pub := peers.Publish(t, ctx, "rtmp://"+origin.rtmpAddr+"/live/foo?key="+cp.Stream.PublishKey, peers.PublishOpts{})
	res, err := peers.ProbeUntil(t, ctx, "rtmp://"+edge.rtmpAddr+"/live/foo")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("ffprobe through the edge: %v %v\n%s", res.Codecs(), err, pub.Stderr())
	}

	// A relay forced to the origin's name, with another role: refused, exits non-zero.
	clash := startUnnamedRelay(t, "clash", "edge", cp.URL, "--name", o.Name)
	select {
	case <-clash.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("a relay named like a live origin is still running after 20 s:\n%s", clash.logText())
	}
	if code := clash.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("the clashing relay exited 0:\n%s", clash.logText())
	}
	out := clash.logText()
	for _, want := range []string{`"` + o.Name + `"`, "live origin", origin.rtmpAddr, "--name"} {
		if !strings.Contains(out, want) {
			t.Errorf("the clashing relay's output does not mention %s:\n%s", want, tail(out, 2000))
		}
	}
	// The origin kept its registration and still serves the edge.
	n, err := cp.Store.NodeByName(ctx, o.Name)
	if err != nil || n.Role != models.NodeRoleOrigin || n.RTMPAddress != origin.rtmpAddr {
		t.Fatalf("origin's registration after the clash: %+v %v", n, err)
	}
	if res, err := peers.Probe(t, ctx, "rtmp://"+edge.rtmpAddr+"/live/foo"); err != nil || !res.HasCodec("h264") {
		t.Fatalf("ffprobe through the edge after the clash: %v %v", res.Codecs(), err)
	}

	// A clean shutdown frees the name at once: a node of another role may
	// take it right away.
	pub.Stop()
	origin.kill(syscall.SIGTERM)
	taker := startUnnamedRelay(t, "taker", "edge", cp.URL, "--name", o.Name)
	testutil.Eventually(t, 10*time.Second, "the name taken over after the origin left", func() bool {
		n, err := cp.Store.NodeByName(ctx, o.Name)
		return err == nil && n.Role == models.NodeRoleEdge && n.RTMPAddress == taker.rtmpAddr
	})
	select {
	case <-taker.done:
		t.Fatalf("the relay taking a released name exited:\n%s", taker.logText())
	default:
	}
}
