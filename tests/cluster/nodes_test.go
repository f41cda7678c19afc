package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/tests/peers"
)

const clusterToken = "cluster-test-token"

// node is one Portier process in its own namespace.
type node struct {
	name, role string
	ns, ip     string
	args       []string // after the binary
	env        []string
	health     string // URL that answers 200 once it serves
	proc       *peers.Proc
	// control lists the links to each control-plane replica this node
	// uses (its --control): cutting them partitions it from the control
	// plane.
	control []*link
	// in is the link others reach it through (origins: the advertised
	// RTMP address; edges: the concierges' relay), nil if none.
	in      *link
	dataDir string
}

// cluster is the system under test and the test's handles on it.
type cluster struct {
	t        *testing.T
	net      *network
	bin      string
	pg       *pgServer // the cluster's own Postgres, on the bridge
	controls []*node
	origins  []*node
	edges    []*node
	cgs      []*node
	// hlsOrigin is made before the control plane (whose --hls-origin-url
	// names it) and started after it.
	hlsOrigin *node
	cdnEdges  []*node
	recordDir string // --record-dir of the control plane; the concierges write there
	hostNum   int
	marks     []mark // when each chaos step began, to place HLS stalls
}

type mark struct {
	step string
	at   time.Time
}

func (c *cluster) mark(step string) { c.marks = append(c.marks, mark{step, time.Now()}) }

// stepAt names the step that was running at t.
func (c *cluster) stepAt(t time.Time) string {
	name := "before the chaos"
	for _, m := range c.marks {
		if !t.Before(m.at) {
			name = m.step
		}
	}
	return name
}

func (c *cluster) newNode(name, role string) *node {
	c.hostNum++
	ns, ip := c.net.addNode(c.t, name, 10+c.hostNum)
	return &node{name: name, role: role, ns: ns, ip: ip}
}

// start runs the node's process in its namespace and waits for health.
func (c *cluster) start(n *node) {
	c.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.ns, c.bin}, n.args...)...)
	cmd.Env = append(os.Environ(), n.env...)
	n.proc = peers.Start(c.t, n.name, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if code, _ := get(n.health, "", nil); code == http.StatusOK {
			return
		}
		if n.proc.Exited() {
			c.t.Fatalf("%s exited: %s", n.name, tail(n.proc.Stderr(), 3000))
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s not healthy at %s: %s", n.name, n.health, tail(n.proc.Stderr(), 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// controlLinks gives a node its own link to each control-plane replica and
// returns the --control value.
func (c *cluster) controlLinks(n *node) string {
	var urls []string
	for _, cp := range c.controls {
		l := newLink(c.t, n.name+"->"+cp.name, c.net.hostIP, cp.ip+":8080")
		n.control = append(n.control, l)
		urls = append(urls, "http://"+l.Addr())
	}
	return strings.Join(urls, ",")
}

func (c *cluster) addControl(name string) *node {
	n := c.newNode(name, "control")
	n.args = []string{"serve", "--database-url", c.pg.DSN(), "--http-addr", n.ip + ":8080", "--cluster-token", clusterToken,
		"--replicas", "2", "--hls-origin-url", "http://" + c.hlsOrigin.ip + ":8090", "--record-dir", c.recordDir, "--log-level", "warn"}
	n.env = []string{"PORTIER_ADMIN_PASSWORD=cluster-admin-password"}
	n.health = "http://" + n.ip + ":8080/readyz"
	c.controls = append(c.controls, n)
	return n
}

func (c *cluster) addOrigin(name string) *node {
	n := c.newNode(name, "origin")
	n.in = newLink(c.t, "to-"+name, c.net.hostIP, n.ip+":1935")
	n.args = []string{"relay", "--role", "origin", "--name", name, "--control", c.controlLinks(n), "--cluster-token", clusterToken,
		"--rtmp-addr", n.ip + ":1935", "--http-addr", n.ip + ":8081", "--rtsp-addr", "",
		"--advertise-addr", n.in.Addr(), "--advertise-http-addr", n.ip + ":8081", "--log-level", "warn"}
	n.health = "http://" + n.ip + ":8081/readyz"
	c.origins = append(c.origins, n)
	return n
}

func (c *cluster) addEdge(name string) *node {
	n := c.newNode(name, "edge")
	n.in = newLink(c.t, "to-"+name, c.net.hostIP, n.ip+":1935")
	n.args = []string{"relay", "--role", "edge", "--name", name, "--control", c.controlLinks(n), "--cluster-token", clusterToken,
		"--rtmp-addr", n.ip + ":1935", "--http-addr", n.ip + ":8081", "--rtsp-addr", "",
		"--advertise-addr", n.in.Addr(), "--advertise-http-addr", n.ip + ":8081", "--log-level", "warn"}
	n.health = "http://" + n.ip + ":8081/readyz"
	c.edges = append(c.edges, n)
	return n
}

func (c *cluster) addConcierge(name string, relayNode *node) *node {
	n := c.newNode(name, "concierge")
	n.dataDir = c.t.TempDir()
	n.args = []string{"concierge", "--name", name, "--control", c.controlLinks(n), "--cluster-token", clusterToken,
		"--data-dir", n.dataDir, "--supervisord", supervisortest.Python(c.t), "--capacity", "4",
		"--http-addr", n.ip + ":8082", "--relay-rtmp", relayNode.in.Addr(), "--drain-timeout", "2s", "--log-level", "warn"}
	n.health = "http://" + n.ip + ":8082/healthz"
	c.cgs = append(c.cgs, n)
	return n
}

// marker is the PORTIER_SUPERVISOR value of a concierge's task processes.
func (n *node) marker(t *testing.T) string {
	abs, err := filepath.Abs(filepath.Join(n.dataDir, "supervisord"))
	if err != nil {
		t.Fatal(err)
	}
	return supervisor.Marker(abs)
}

// relayStreams is a relay's /api/v1/streams (nil if it does not answer).
func relayStreams(n *node) []relay.StreamStatus {
	var body struct {
		Streams []relay.StreamStatus `json:"streams"`
	}
	if code, _ := get("http://"+n.ip+":8081/api/v1/streams", clusterToken, &body); code != http.StatusOK {
		return nil
	}
	return body.Streams
}

func streamOn(n *node, path string) (relay.StreamStatus, bool) {
	for _, s := range relayStreams(n) {
		if s.Path == path {
			return s, true
		}
	}
	return relay.StreamStatus{}, false
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// get fetches u with an optional bearer token and decodes JSON into out.
func get(u, token string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// post sends JSON with a bearer token and returns the status.
func post(u, token string, in any) (int, error) {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// apiToken makes an API token with `portier token add` on the database.
func apiToken(t *testing.T, bin, dsn, user string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "token", "add", "--database-url", dsn, "--username", user, "--scopes", "read,write")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("portier token add: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// taskProcs lists the live task processes under one of the given
// supervisor markers (PORTIER_TASK_ID and PORTIER_SUPERVISOR in their
// environment; the same test as tests/e2e's, on processes in any
// namespace: /proc shows them all) by kind, which kindOf tells from the
// command line: each of the test's task configs has one kind, so every
// process of a kind is a runner of that config, whatever its task row.
func taskProcs(markers []string, kindOf func(cmdline string) string) map[string][]int {
	ents, _ := os.ReadDir("/proc")
	out := map[string][]int{}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("\x00PORTIER_TASK_ID=")) || !slices.ContainsFunc(markers, func(m string) bool {
			return bytes.Contains(env, []byte(supervisor.MarkerEnv+"="+m+"\x00"))
		}) {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if f := strings.Fields(string(st)); err != nil || len(f) < 3 || f[2] == "Z" {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		pid, _ := strconv.Atoi(e.Name())
		k := kindOf(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		out[k] = append(out[k], pid)
	}
	return out
}

// runnerWatch samples taskProcs in the background and keeps the most
// runners of each kind seen at once.
type runnerWatch struct {
	mu   sync.Mutex
	max  map[string]int
	stop context.CancelFunc
	done chan struct{}
}

func watchRunners(markers []string, kindOf func(string) string) *runnerWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &runnerWatch{max: map[string]int{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			procs := taskProcs(markers, kindOf)
			w.mu.Lock()
			for k, pids := range procs {
				w.max[k] = max(w.max[k], len(pids))
			}
			w.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func (w *runnerWatch) result() map[string]int {
	w.stop()
	<-w.done
	return w.max
}

func (c *cluster) String() string {
	return fmt.Sprintf("%d control, %d origins, %d edges, %d concierges, 1 HLS origin, %d CDN edges", len(c.controls), len(c.origins), len(c.edges), len(c.cgs), len(c.cdnEdges))
}
