package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// prefix names every namespace and interface this package creates; the
// suffix after it is the PID of the test process that made them, so a run
// can remove what a killed earlier run left behind.
const prefix = "ptc"

// network is a bridge in the root namespace and one namespace per node,
// each joined to the bridge by a veth pair.
type network struct {
	id     string // hex PID
	bridge string
	subnet string // "10.213.N"
	hostIP string // the bridge's address: links and the Postgres proxy listen here
	mu     sync.Mutex
	nodes  []string // namespace names
	once   sync.Once
}

// requireNetns skips (fails under CI=true) unless this process can create
// network namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root: the cluster test creates network namespaces, veth pairs and a bridge"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "no ip(8) (iproute2)"
		} else if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
			why = fmt.Sprintf("ip netns unavailable: %v: %s", err, out)
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cluster test cannot run (CI=true requires it): %s", why)
	}
	t.Skip(why)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetwork creates the bridge; teardown (also on failure, panic and, via
// the watchdog in TestMain's caller, a hung test) removes it and every
// namespace.
func newNetwork(t *testing.T) *network {
	t.Helper()
	pid := os.Getpid()
	n := &network{id: strconv.FormatInt(int64(pid), 36), subnet: fmt.Sprintf("10.213.%d", pid%250+1)}
	n.bridge = prefix + "br" + n.id
	n.hostIP = n.subnet + ".1"
	t.Cleanup(n.teardown)
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", n.hostIP + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// addNode creates namespace ns with address subnet.host, lo up and a
// default route through the bridge. It returns the node's IP.
func (n *network) addNode(t *testing.T, node string, host int) (ns, addr string) {
	t.Helper()
	ns = fmt.Sprintf("%s-%s-%s", prefix, n.id, node)
	hostSide := fmt.Sprintf("%sv%s%d", prefix, n.id, host)
	if len(hostSide) > 15 {
		t.Fatalf("interface name %s too long", hostSide)
	}
	addr = fmt.Sprintf("%s.%d", n.subnet, host)
	n.mu.Lock()
	n.nodes = append(n.nodes, ns)
	n.mu.Unlock()
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", hostSide, "master", n.bridge},
		{"link", "set", hostSide, "up"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", n.hostIP},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return ns, addr
}

// teardown kills what still runs in the namespaces and removes them and
// the bridge (the veth pairs go with their namespace). Idempotent.
func (n *network) teardown() {
	n.once.Do(func() {
		n.mu.Lock()
		nodes := append([]string(nil), n.nodes...)
		n.mu.Unlock()
		for _, ns := range nodes {
			killNamespace(ns)
			ip("netns", "del", ns)
		}
		ip("link", "del", n.bridge)
	})
}

// killNamespace SIGKILLs every process in ns (they are ours: the
// namespace carries our PID).
func killNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sweepStale removes namespaces and bridges that earlier runs of this
// package left behind (a test binary killed by its -timeout runs no
// cleanup): those whose creator PID is gone.
func sweepStale() {
	alive := func(id string) bool {
		pid, err := strconv.ParseInt(id, 36, 64)
		if err != nil {
			return true // not ours: leave it
		}
		return syscall.Kill(int(pid), 0) == nil
	}
	sweepStalePostgres(alive)
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix+"-") {
			continue
		}
		parts := strings.SplitN(f[0], "-", 3)
		if len(parts) == 3 && !alive(parts[1]) {
			killNamespace(f[0])
			ip("netns", "del", f[0])
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if id, ok := strings.CutPrefix(name, prefix+"br"); ok && !alive(id) {
			ip("link", "del", name)
		}
	}
}
