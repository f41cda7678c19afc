package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/tests/peers"
)

// serveProc is a `portier serve` control-plane replica.
type serveProc struct {
	*peers.Proc
	URL string
}

// startServeProc runs a control-plane replica on dsn (Postgres, shared by
// the replicas) with the relay tests' cluster token and waits for /readyz.
func startServeProc(t *testing.T, name, dsn string, extra ...string) *serveProc {
	t.Helper()
	addr := peers.FreeAddr(t)
	pw := make([]byte, 12)
	rand.Read(pw)
	args := append([]string{"serve", "--database-url", dsn, "--http-addr", addr, "--cluster-token", relayClusterToken,
		"--log-level", "warn"}, extra...)
	cmd := exec.Command(peers.PortierBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "PORTIER_ADMIN_PASSWORD="+hex.EncodeToString(pw))
	sp := &serveProc{Proc: peers.Start(t, name, cmd), URL: "http://" + addr}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, sp.URL+"/readyz"); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, sp.Stderr())
	}
	return sp
}

// TestControlPlaneReplicaKill: two `portier serve` replicas on one
// Postgres; an origin (`portier relay`) and a concierge (`portier
// concierge`) are given both (--control A,B) and use A. A restream task
// runs on the concierge. kill -9 of A: the origin and the concierge
// heartbeat through B within a heartbeat or two, the origin stays ready,
// the publish and the restream carry on (same process, same epoch: the
// task is never reassigned), and B authorises a new publish.
func TestControlPlaneReplicaKill(t *testing.T) {
	dsn, ok := modelstest.Schema(t) // fails under CI=true when Postgres is unreachable
	if !ok {
		t.Skip("Postgres unreachable (set PORTIER_TEST_POSTGRES_URL; CI=true makes this a failure)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := models.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	u, err := store.CreateUser(ctx, "owner", "owner-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	foo, err := store.CreateStream(ctx, "live", "foo", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	bar, err := store.CreateStream(ctx, "live", "bar", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	nginx := peers.NginxRTMP(t, peers.NginxOpts{})
	if err := store.CreateTaskConfig(ctx, &models.TaskConfig{StreamID: foo.ID, Type: models.TypeRestream, Name: "to-nginx", Enabled: true,
		Spec: models.MustJSON(models.RestreamSpec{Target: "rtmp://" + nginx.RTMPAddr + "/live", Key: "copy"})}); err != nil {
		t.Fatal(err)
	}

	originRTMP := peers.FreeAddr(t)
	a := startServeProc(t, "control-a", dsn, "--replicas", "2", "--relay-rtmp-url", "rtmp://"+originRTMP)
	b := startServeProc(t, "control-b", dsn, "--replicas", "2", "--relay-rtmp-url", "rtmp://"+originRTMP)
	control := a.URL + "," + b.URL
	origin := startRelayProc(t, "origin-1", "origin", control, "--rtmp-addr", originRTMP)
	marker := startConciergeProc(t, control, "cg-1")

	pub := peers.Publish(t, ctx, "rtmp://"+originRTMP+"/live/foo?key="+foo.PublishKey, peers.PublishOpts{Size: "320x180"})
	var task models.Task
	cgWait(t, "restream task running", 60*time.Second, func() bool {
		ts, _, _ := store.ListTasks(ctx, models.TaskFilter{StreamID: foo.ID})
		if len(ts) == 1 {
			task = ts[0]
		}
		return len(ts) == 1 && ts[0].State == models.TaskRunning && len(taskProcs(task.ID, marker)) == 1
	})
	probeCtx, cancelProbe := context.WithTimeout(ctx, 30*time.Second)
	if _, err := peers.ProbeUntil(t, probeCtx, nginx.RTMPURL("live", "copy")); err != nil {
		t.Fatalf("restream target before the kill: %v", err)
	}
	cancelProbe()

	// While A dies and B takes over: the origin stays ready, one process
	// runs the task, the publish goes on.
	var notReady, procCountWrong atomic.Int32
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if code := httpStatus("http://" + origin.httpAddr + "/readyz"); code != http.StatusOK {
				notReady.Add(1)
			}
			if n := len(taskProcs(task.ID, marker)); n != 1 {
				procCountWrong.Add(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	t0 := time.Now()
	a.Kill() // SIGKILL
	// Both nodes heartbeat through B: their last heartbeat moves past the kill.
	heartbeatAfter := func(name string) time.Duration {
		var took time.Duration
		testutil.Eventually(t, 15*time.Second, name+" heartbeating through replica B", func() bool {
			nodes, err := store.ListNodes(ctx, "")
			if err != nil {
				return false
			}
			for _, n := range nodes {
				if n.Name == name && n.LastHeartbeat != nil && n.LastHeartbeat.After(t0) {
					took = n.LastHeartbeat.Sub(t0)
					return true
				}
			}
			return false
		})
		return took
	}
	tOrigin, tConcierge := heartbeatAfter("origin-1"), heartbeatAfter("cg-1")
	t.Logf("first heartbeat through replica B after kill -9 of A: origin %v, concierge %v",
		tOrigin.Round(time.Millisecond), tConcierge.Round(time.Millisecond))
	if limit := 3 * time.Second; tOrigin > limit || tConcierge > limit { // 3 heartbeats of 1 s
		t.Errorf("failover took longer than 3 heartbeats (%v): origin %v, concierge %v", limit, tOrigin, tConcierge)
	}

	// B authorises a new publish on the origin.
	pub2 := peers.Publish(t, ctx, "rtmp://"+originRTMP+"/live/bar?key="+bar.PublishKey, peers.PublishOpts{Size: "320x180"})
	testutil.Eventually(t, 20*time.Second, "live/bar published on the origin after the kill", func() bool {
		_, ok := findStream(relayStreams(t, origin.httpAddr), "live/bar")
		return ok
	})
	// Let the task's lease pass more than once (lease: a few heartbeats):
	// a concierge that lost the control plane would be cut off by now.
	time.Sleep(6 * time.Second)
	stopWatch()
	<-watched
	cur, err := store.TaskByID(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.State != models.TaskRunning || cur.NodeName != task.NodeName || cur.Epoch != task.Epoch {
		t.Errorf("task after the kill: %s on %s epoch %d, want running on %s epoch %d (never reassigned)",
			cur.State, cur.NodeName, cur.Epoch, task.NodeName, task.Epoch)
	}
	if n := notReady.Load(); n > 0 {
		t.Errorf("the origin was not ready %d times while replica A died", n)
	}
	if n := procCountWrong.Load(); n > 0 {
		t.Errorf("the task did not run in exactly one process %d times while replica A died", n)
	}
	for _, p := range []*peers.Proc{pub, pub2} {
		if p.Exited() {
			t.Errorf("publisher %s ended: %s", p.Name(), p.Stderr())
		}
	}
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
