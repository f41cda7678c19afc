package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/tests/rtmpplayer"
)

// heartbeat is the control plane's default heartbeat interval; "within 3
// heartbeats" below is nodewire.AliveHeartbeats of it.
const heartbeat = nodewire.DefaultHeartbeat

// settle is how long the API may take to agree with the relays after a
// change: 3 heartbeats, plus one for the poll and the load of this machine.
const settle = (nodewire.AliveHeartbeats + 1) * heartbeat

// TestCluster runs 2 control-plane replicas (one Postgres), 2 origins, 3
// edges (CLUSTER_EDGES to change) and 2 concierges, each in its own network
// namespace, with one stream published redundantly to both origins, RTMP
// players on every edge and a restream task to nginx-rtmp, and then, in
// order: kill -9 of a control-plane replica, of the origin the edges pull
// from, of the concierge running the task; a partition of one edge from the
// control plane; delay and loss on the surviving origin's link; the killed
// replica and origin restarted. After each step it checks the claims in
// the step's comment.
func TestCluster(t *testing.T) {
	if raceEnabled {
		t.Skip("the cluster test runs without the race detector (make test runs it so)")
	}
	requireNetns(t)
	dsn, ok := modelstest.Schema(t) // fails under CI=true when Postgres is unreachable
	if !ok {
		t.Skip("Postgres unreachable (set PORTIER_TEST_POSTGRES_URL; CI=true makes this a failure)")
	}
	peers.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nw := newNetwork(t)
	// A test killed by its -timeout runs no cleanup: tear the network down
	// (and with it every node) shortly before that.
	if dl, ok := t.Deadline(); ok {
		wd := time.AfterFunc(time.Until(dl)-20*time.Second, func() {
			fmt.Fprintln(os.Stderr, "cluster test: deadline near, tearing the network down")
			nw.teardown()
		})
		defer wd.Stop()
	}

	store, err := models.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	owner, err := store.CreateUser(ctx, "owner", "owner-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := store.CreateStream(ctx, "live", "s1", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := store.CreateStream(ctx, "live", "s2", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	nginx := peers.NginxRTMP(t, peers.NginxOpts{})
	nginxLink := newLink(t, "to-nginx", nw.hostIP, nginx.RTMPAddr)
	if err := store.CreateTaskConfig(ctx, &models.TaskConfig{StreamID: s1.ID, Type: models.TypeRestream, Name: "to-nginx", Enabled: true,
		Spec: models.MustJSON(models.RestreamSpec{Target: "rtmp://" + nginxLink.Addr() + "/live", Key: "copy"})}); err != nil {
		t.Fatal(err)
	}

	c := &cluster{t: t, net: nw, bin: peers.PortierBinary(t)}
	token := apiToken(t, c.bin, dsn, "owner")
	c.pgLink = newLink(t, "to-postgres", nw.hostIP, hostOf(t, dsn))
	c.nodeDSN = viaHost(dsn, c.pgLink.Addr())

	nEdges := 3
	if v, err := strconv.Atoi(os.Getenv("CLUSTER_EDGES")); err == nil && v >= 2 {
		nEdges = v
	}
	t0 := time.Now()
	for _, name := range []string{"control-a", "control-b"} {
		c.start(c.addControl(name))
	}
	for _, name := range []string{"origin-1", "origin-2"} {
		c.start(c.addOrigin(name))
	}
	for i := range nEdges {
		c.start(c.addEdge("edge-" + strconv.Itoa(i+1)))
	}
	c.start(c.addConcierge("cg-1", c.edges[0]))
	c.start(c.addConcierge("cg-2", c.edges[1]))
	markers := []string{c.cgs[0].marker(t), c.cgs[1].marker(t)}
	t.Logf("%v up in %v", c, time.Since(t0).Round(time.Millisecond))

	// Load: s1 published to both origins, 2 players per edge.
	pubs := map[string]*peers.Proc{}
	publish := func(o *node) {
		p := peers.Publish(t, ctx, "rtmp://"+o.ip+":1935/live/s1?key="+s1.PublishKey, peers.PublishOpts{Size: "320x180", FrameRate: 25})
		if err := p.WaitFrames(ctx, 25); err != nil {
			t.Fatalf("publish to %s: %v", o.name, err)
		}
		pubs[o.name] = p
	}
	for _, o := range c.origins {
		publish(o)
	}
	players := map[string][]*rtmpplayer.Player{}
	for _, e := range c.edges {
		for range 2 {
			p, err := rtmpplayer.Start(t, ctx, "rtmp://"+e.ip+":1935/live", "s1")
			if err != nil {
				t.Fatalf("player on %s: %v", e.name, err)
			}
			players[e.name] = append(players[e.name], p)
		}
	}
	for name, ps := range players {
		for _, p := range ps {
			if err := p.WaitMessages(ctx, 50); err != nil {
				t.Fatalf("player on %s: %v", name, err)
			}
		}
	}
	task := c.waitTask(ctx, store, s1.ID, "", markers)
	t.Logf("restream task %d running on %s (epoch %d)", task.ID, task.NodeName, task.Epoch)
	runners := watchRunners(markers)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "steady state")

	// Step 1: kill -9 of the control-plane replica the nodes use. A stream
	// created through it (acknowledged) is there on the other; every node
	// heartbeats through the other within 3 heartbeats; no player drops.
	a, b := c.controls[0], c.controls[1]
	if code, err := post("http://"+a.ip+":8080/api/v1/streams", token, map[string]string{"app": "live", "name": "ack-1"}); code != 201 {
		t.Fatalf("create stream through %s: %d %v", a.name, code, err)
	}
	for _, ps := range players {
		for _, p := range ps {
			p.ResetGap()
		}
	}
	counts := c.playerCounts(players)
	kill := time.Now()
	a.proc.Kill()
	var worst time.Duration
	for _, n := range slices.Concat(c.origins, c.edges, c.cgs) {
		took := c.waitHeartbeatAfter(ctx, store, n.name, kill)
		worst = max(worst, took)
	}
	t.Logf("step 1, kill -9 %s: every node heartbeats through %s, the slowest %v after the kill", a.name, b.name, worst.Round(time.Millisecond))
	if worst > nodewire.AliveHeartbeats*heartbeat {
		t.Errorf("step 1: a node took %v to heartbeat through the other replica, want ≤ 3 heartbeats", worst)
	}
	if _, err := store.StreamByName(ctx, "live", "ack-1"); err != nil {
		t.Errorf("step 1: the stream created through %s before its kill is lost: %v", a.name, err)
	}
	if gap := c.checkPlayers("step 1", players, counts, 50); gap >= time.Second {
		t.Errorf("step 1: media gap %v while a control-plane replica died, want < 1 s", gap)
	}
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 1")

	// Step 2: kill -9 of the origin edge-1 pulls from. No player drops;
	// the media gap stays under 1 s; the API lists only the survivor.
	up, _ := streamOn(c.edges[0], "live/s1")
	var victim, survivor *node
	for _, o := range c.origins {
		if o.in.Addr() == up.Upstream {
			victim = o
		} else {
			survivor = o
		}
	}
	if victim == nil {
		t.Fatalf("step 2: edge-1 pulls from %q, not an origin", up.Upstream)
	}
	for _, ps := range players {
		for _, p := range ps {
			p.ResetGap()
		}
	}
	counts = c.playerCounts(players)
	victim.proc.Kill()
	pubs[victim.name].Stop()
	for _, e := range c.edges {
		testutil.Eventually(t, 10*time.Second, e.name+" pulling from "+survivor.name, func() bool {
			st, ok := streamOn(e, "live/s1")
			return ok && st.Upstream == survivor.in.Addr()
		})
	}
	gap := c.checkPlayers("step 2", players, counts, 150)
	t.Logf("step 2, kill -9 %s: worst media gap on the edges' players %d ms", victim.name, gap.Milliseconds())
	if gap >= time.Second {
		t.Errorf("step 2: media gap %v on origin failover, want < 1 s", gap)
	}
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 2")

	// Step 3: kill -9 of the concierge running the restream: it runs again
	// on the other within 10 s, never twice at once, with a new epoch.
	var cgVictim *node
	for _, n := range c.cgs {
		if n.name == task.NodeName {
			cgVictim = n
		}
	}
	kill = time.Now()
	cgVictim.proc.Kill()
	moved := c.waitTask(ctx, store, s1.ID, cgVictim.name, markers)
	took := time.Since(kill)
	t.Logf("step 3, kill -9 %s: task running on %s (epoch %d → %d) after %v", cgVictim.name, moved.NodeName, task.Epoch, moved.Epoch, took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("step 3: task ran again after %v, want ≤ 10 s", took)
	}
	if moved.Epoch <= task.Epoch {
		t.Errorf("step 3: epoch %d after the move, want > %d", moved.Epoch, task.Epoch)
	}
	probeCtx, cancelProbe := context.WithTimeout(ctx, 30*time.Second)
	if _, err := peers.ProbeUntil(t, probeCtx, nginx.RTMPURL("live", "copy")); err != nil {
		t.Errorf("step 3: the restream target has no stream: %v", err)
	}
	cancelProbe()

	// Step 4: partition the last edge from the control plane (its origin
	// link stays): the control plane sees it dead within 3 heartbeats;
	// its players keep playing and a new player is let in (plays fail
	// open); after the heal it is alive again.
	cut := c.edges[len(c.edges)-1]
	counts = c.playerCounts(players)
	for _, l := range cut.control {
		l.Cut()
	}
	dead := c.waitAlive(ctx, store, cut.name, false)
	late, err := rtmpplayer.Start(t, ctx, "rtmp://"+cut.ip+":1935/live", "s1")
	if err == nil {
		err = late.WaitMessages(ctx, 50)
	}
	if err != nil {
		t.Errorf("step 4: a new player on the partitioned %s: %v", cut.name, err)
	}
	c.checkPlayers("step 4 (partitioned)", players, counts, 100)
	for _, l := range cut.control {
		l.Heal()
	}
	back := c.waitAlive(ctx, store, cut.name, true)
	t.Logf("step 4, partition of %s from the control plane: dead for it after %v, alive %v after the heal; its players kept playing, a new one was let in",
		cut.name, dead.Round(time.Millisecond), back.Round(time.Millisecond))

	// Step 5: 100 ms delay and 2 % loss on the surviving origin's link
	// (every edge pulls through it): players go on.
	survivor.in.Impair(100*time.Millisecond, 0.02)
	counts = c.playerCounts(players)
	for _, ps := range players {
		for _, p := range ps {
			p.ResetGap()
		}
	}
	gap = c.checkPlayers("step 5 (impaired)", players, counts, 250)
	survivor.in.Impair(0, 0)
	t.Logf("step 5, 100 ms delay and 2 %% loss on %s's link for 5 s of media: players kept playing, worst gap %d ms", survivor.name, gap.Milliseconds())

	// Step 6: restart the killed replica, origin and concierge (same
	// addresses); the origin takes the publish again and the API lists
	// both origins; the concierge runs nothing stale (the task stays where
	// it moved, with its epoch, in one process).
	c.start(a)
	c.start(victim)
	c.start(cgVictim)
	publish(victim)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 6")
	c.waitHeartbeatAfter(ctx, store, cgVictim.name, time.Now())
	time.Sleep(3 * heartbeat) // observation window: a stale runner would start here
	if cur, err := store.TaskByID(ctx, moved.ID); err != nil || cur.NodeName != moved.NodeName || cur.Epoch != moved.Epoch || cur.State != models.TaskRunning || taskProcs(markers) != 1 {
		t.Errorf("step 6: task after %s came back: %+v %v, want running on %s epoch %d", cgVictim.name, cur, err, moved.NodeName, moved.Epoch)
	}
	c.checkPlayers("step 6", players, nil, 0)

	// Step 7: partition an origin from the control plane (edges still
	// reach it): it authorises nothing new (a publish is refused with the
	// reason) and keeps its publish; the stream stays live through the
	// other origin; after the heal the API lists both origins again.
	for _, l := range victim.control {
		l.Cut()
	}
	c.waitAlive(ctx, store, victim.name, false)
	if reason := refusedPublish(ctx, victim, "s2?key="+s2.PublishKey); reason != "control plane unreachable" {
		t.Errorf("step 7: publish at the partitioned %s: refusal %q, want \"control plane unreachable\"", victim.name, reason)
	}
	if st, ok := streamOn(victim, "live/s1"); !ok || !st.Live {
		t.Errorf("step 7: the partitioned %s dropped its publish", victim.name)
	}
	for _, l := range victim.control {
		l.Heal()
	}
	c.waitAlive(ctx, store, victim.name, true)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 7")
	t.Logf("step 7, partition of %s from the control plane: a publish was refused (control plane unreachable), its publish went on", victim.name)

	// Step 8: a database outage (Postgres cut from both replicas for 5 s,
	// as a restart would; the Postgres here is shared, so it is not
	// restarted): players keep playing; after it the API agrees with the
	// relays, the restream runs (once), and what was acknowledged before
	// is there.
	if code, err := post("http://"+b.ip+":8080/api/v1/streams", token, map[string]string{"app": "live", "name": "ack-2"}); code != 201 {
		t.Fatalf("step 8: create stream through %s: %d %v", b.name, code, err)
	}
	counts = c.playerCounts(players)
	c.pgLink.Cut()
	time.Sleep(5 * time.Second)
	c.pgLink.Heal()
	healed := time.Now()
	c.checkPlayers("step 8 (database outage)", players, counts, 100)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 8")
	after := c.waitTask(ctx, store, s1.ID, "", markers)
	t.Logf("step 8, 5 s database outage: restream running (task %d) on %s (epoch %d) %v after it ended", after.ID, after.NodeName, after.Epoch, time.Since(healed).Round(time.Millisecond))
	for _, name := range []string{"ack-1", "ack-2"} {
		if _, err := store.StreamByName(ctx, "live", name); err != nil {
			t.Errorf("step 8: stream %s, acknowledged before the outage, is lost: %v", name, err)
		}
	}

	if n := runners.result(); n > 1 {
		t.Errorf("the restream task ran %d times at once, want never more than 1 (fencing)", n)
	}
	for _, p := range pubs {
		if p != pubs[victim.name] && p.Exited() {
			t.Errorf("publisher %s ended: %s", p.Name(), tail(p.Stderr(), 2000))
		}
	}
	t.Logf("cluster test done in %v", time.Since(t0).Round(time.Second))
}

// refusedPublish publishes name at n's RTMP server and returns the
// refusal's description ("" if the publish was accepted).
func refusedPublish(ctx context.Context, n *node, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cc, err := rtmp.Dial(ctx, "rtmp://"+n.ip+":1935/live", rtmp.ClientConfig{})
	if err != nil {
		return "dial: " + err.Error()
	}
	defer cc.Close()
	err = cc.Publish(ctx, name)
	var se *rtmp.StatusError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Description
	default:
		return err.Error()
	}
}

func hostOf(t *testing.T, dsn string) string {
	t.Helper()
	h := strings.TrimPrefix(dsn, "postgres://")
	if i := strings.IndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if i := strings.IndexAny(h, "/?"); i >= 0 {
		h = h[:i]
	}
	if !strings.Contains(h, ":") {
		h += ":5432"
	}
	return h
}

// waitTask waits until the stream's restream runs: one task row that
// should run is running on a concierge other than not, in one process, and
// every other row of the stream (an earlier live session's) is stopped.
func (c *cluster) waitTask(ctx context.Context, store *models.Store, streamID int64, not string, markers []string) models.Task {
	c.t.Helper()
	var task models.Task
	testutil.EventuallyErr(c.t, 30*time.Second, "the restream task running", func() (bool, error) {
		ts, _, err := store.ListTasks(ctx, models.TaskFilter{StreamID: streamID})
		if err != nil {
			return false, err
		}
		var desc []string
		running := 0
		for _, tk := range ts {
			desc = append(desc, fmt.Sprintf("task %d desired %s state %s on %q epoch %d (%s)", tk.ID, tk.DesiredState, tk.State, tk.NodeName, tk.Epoch, tk.Reason))
			switch {
			case tk.DesiredState == models.DesiredRunning && tk.State == models.TaskRunning && tk.NodeName != not:
				running++
				task = tk
			case tk.State != models.TaskStopped:
				running += 2 // not settled
			}
		}
		n := taskProcs(markers)
		return running == 1 && n == 1, fmt.Errorf("%s; %d processes", strings.Join(desc, "; "), n)
	})
	return task
}

// waitHeartbeatAfter waits until name heartbeats after t0 and returns when.
func (c *cluster) waitHeartbeatAfter(ctx context.Context, store *models.Store, name string, t0 time.Time) time.Duration {
	c.t.Helper()
	var took time.Duration
	testutil.Eventually(c.t, 15*time.Second, name+" heartbeating", func() bool {
		n, err := store.NodeByName(ctx, name)
		if err != nil || n.LastHeartbeat == nil || !n.LastHeartbeat.After(t0) {
			return false
		}
		took = n.LastHeartbeat.Sub(t0)
		return true
	})
	return took
}

// waitAlive waits until the control plane's node list (through a replica
// that is up) says name is alive (or not), and returns how long it took.
func (c *cluster) waitAlive(ctx context.Context, store *models.Store, name string, alive bool) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	testutil.Eventually(c.t, settle+5*time.Second, fmt.Sprintf("%s alive=%v for the control plane", name, alive), func() bool {
		for _, cp := range c.controls {
			if cp.proc.Exited() {
				continue
			}
			var list nodewire.NodeList
			if code, _ := get("http://"+cp.ip+":8080"+nodewire.PathNodes, clusterToken, &list); code != 200 {
				continue
			}
			for _, n := range list.Nodes {
				if n.Name == name {
					return n.Alive == alive
				}
			}
			return !alive
		}
		return false
	})
	return time.Since(t0)
}

func (c *cluster) playerCounts(players map[string][]*rtmpplayer.Player) map[*rtmpplayer.Player]int {
	out := map[*rtmpplayer.Player]int{}
	for _, ps := range players {
		for _, p := range ps {
			out[p], _, _, _ = p.Stats()
		}
	}
	return out
}

// checkPlayers asserts that every player still plays, with timestamps in
// order, and (with counts) received more media messages since counts; it
// returns the worst gap since the players' last ResetGap.
func (c *cluster) checkPlayers(step string, players map[string][]*rtmpplayer.Player, counts map[*rtmpplayer.Player]int, more int) time.Duration {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var worst time.Duration
	for edge, ps := range players {
		for i, p := range ps {
			if counts != nil {
				if err := p.WaitMessages(ctx, counts[p]+more); err != nil {
					c.t.Errorf("%s: player %d on %s: %v", step, i, edge, err)
					continue
				}
			}
			_, gap, back, err := p.Stats()
			if !p.Playing() {
				c.t.Errorf("%s: player %d on %s dropped: %v", step, i, edge, err)
			}
			if back > 0 {
				c.t.Errorf("%s: player %d on %s: %d timestamps went backwards", step, i, edge, back)
			}
			worst = max(worst, gap)
		}
	}
	return worst
}

// checkAPI waits (at most settle) until the control plane's REST API
// (through a live replica) says path is live at exactly the origins whose
// relay holds it live.
func (c *cluster) checkAPI(ctx context.Context, token string, streamID int64, path, step string) {
	c.t.Helper()
	var want, got []string
	t0 := time.Now()
	deadline := t0.Add(settle)
	for {
		want = want[:0]
		for _, o := range c.origins {
			if o.proc.Exited() {
				continue
			}
			if st, ok := streamOn(o, path); ok && st.Live {
				want = append(want, o.name)
			}
		}
		got = got[:0]
		var view struct {
			Live    bool `json:"live"`
			Origins []struct {
				Node string `json:"node"`
			} `json:"origins"`
		}
		for _, cp := range c.controls {
			if cp.proc.Exited() {
				continue
			}
			if code, _ := get("http://"+cp.ip+":8080/api/v1/streams/"+strconv.FormatInt(streamID, 10), token, &view); code == 200 {
				for _, o := range view.Origins {
					got = append(got, o.Node)
				}
				break
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if len(want) > 0 && view.Live && slices.Equal(want, got) {
			c.t.Logf("%s: API agrees with the relays (%s live at %v) after %v", step, path, got, time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			c.t.Errorf("%s: after %v the API says live=%v origins %v, the relays hold it at %v", step, settle, view.Live, got, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
