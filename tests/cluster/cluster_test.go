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
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/tests/rtmpplayer"
)

// heartbeat is the control plane's default heartbeat interval; "within 3
// heartbeats" below is nodewire.AliveHeartbeats of it.
const heartbeat = nodewire.DefaultHeartbeat

// settle is how long the API may take to agree with the relays after a
// change: 3 heartbeats, plus one for the poll and the load of this machine.
const settle = (nodewire.AliveHeartbeats + 1) * heartbeat

// TestCluster runs 2 control-plane replicas on the cluster's own Postgres,
// 2 origins, 3 edges (CLUSTER_EDGES to change), 2 concierges, an HLS origin
// and 2 CDN edges, each in its own network namespace, with one stream
// published redundantly to both origins, RTMP players on every edge, a
// restream task to nginx-rtmp, a record task, an HLS task and simulated
// HLS viewers through the control plane's playlist rewriter and the CDN
// edges, and then, in order: kill -9 of a control-plane replica, of the
// origin the edges pull from, of the concierge running the HLS task; a
// partition of one edge from the control plane; delay and loss on the
// surviving origin's link; the killed replica, origin and concierge
// restarted; a partition of an origin; a Postgres crash and restart. After
// each step it checks the claims in the step's comment; at the end, that no
// task ever ran twice at once, that no HLS viewer stalled longer than
// hlsStallBound, that no segment path served two contents, and that the
// recordings play.
func TestCluster(t *testing.T) {
	if raceEnabled {
		t.Skip("the cluster test runs without the race detector (make test runs it so)")
	}
	requireNetns(t)
	requirePostgresBinaries(t)
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nw := newNetwork(t)
	pg := startPostgres(t, nw.hostIP)
	// A test killed by its -timeout runs no cleanup: tear the network down
	// (and with it every node) and stop Postgres shortly before that.
	if dl, ok := t.Deadline(); ok {
		wd := time.AfterFunc(time.Until(dl)-20*time.Second, func() {
			fmt.Fprintln(os.Stderr, "cluster test: deadline near, tearing the network down")
			nw.teardown()
			pg.remove()
		})
		defer wd.Stop()
	}
	dsn := pg.DSN()
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
	c := &cluster{t: t, net: nw, bin: peers.PortierBinary(t), pg: pg, recordDir: t.TempDir()}
	for _, tc := range []*models.TaskConfig{
		{Type: models.TypeRestream, Name: "to-nginx", Spec: models.MustJSON(models.RestreamSpec{Target: "rtmp://" + nginxLink.Addr() + "/live", Key: "copy"})},
		{Type: models.TypeRecord, Name: "rec", Spec: models.MustJSON(models.RecordSpec{SegmentSeconds: 10, Format: "mp4"})},
		{Type: models.TypeHLS, Name: "hls", Spec: models.MustJSON(models.HLSSpec{SegmentSeconds: int(hlsSegment / time.Second),
			Renditions: []models.Rendition{{Name: "low", Kind: "video", Width: 160, Height: 90, FPS: 10, VideoBitrateKbps: 100, AudioBitrateKbps: 32}}})},
	} {
		tc.StreamID, tc.Enabled = s1.ID, true
		if err := store.CreateTaskConfig(ctx, tc); err != nil {
			t.Fatal(err)
		}
	}
	token := apiToken(t, c.bin, dsn, "owner")

	nEdges := 3
	if v, err := strconv.Atoi(os.Getenv("CLUSTER_EDGES")); err == nil && v >= 2 {
		nEdges = v
	}
	t0 := time.Now()
	c.hlsOrigin = c.newNode("hls-origin", "hls-origin")
	for _, name := range []string{"control-a", "control-b"} {
		c.start(c.addControl(name))
	}
	c.addHLSOrigin(c.hlsOrigin)
	c.start(c.hlsOrigin)
	for _, name := range []string{"origin-1", "origin-2"} {
		c.start(c.addOrigin(name))
	}
	for i := range nEdges {
		c.start(c.addEdge("edge-" + strconv.Itoa(i+1)))
	}
	for _, name := range []string{"cdn-1", "cdn-2"} {
		c.start(c.addCDNEdge(name))
	}
	c.start(c.addConcierge("cg-1", c.edges[0]))
	c.start(c.addConcierge("cg-2", c.edges[1]))
	markers := []string{c.cgs[0].marker(t), c.cgs[1].marker(t)}
	kindOf := func(cmd string) string {
		switch {
		case strings.Contains(cmd, nginxLink.Addr()):
			return models.TypeRestream
		case strings.Contains(cmd, c.recordDir):
			return models.TypeRecord
		case strings.Contains(cmd, c.hlsOrigin.ip+":8090"):
			return models.TypeHLS
		}
		return "other"
	}
	kinds := []string{models.TypeRestream, models.TypeRecord, models.TypeHLS}
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
	tasks := map[string]models.Task{}
	for _, k := range kinds {
		tasks[k] = c.waitTask(ctx, store, s1.ID, k, "", markers, kindOf)
		t.Logf("%s task %d running on %s (epoch %d)", k, tasks[k].ID, tasks[k].NodeName, tasks[k].Epoch)
	}
	runners := watchRunners(markers, kindOf)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "steady state")
	hls := c.startHLSViewers(ctx, token, s1.ID)
	defer hls.stop()

	c.mark("step 1")
	// Step 1: kill -9 of the control-plane replica the nodes use. A stream
	// created through it (acknowledged) is there on the other; every node
	// heartbeats through the other within 3 heartbeats; no player drops.
	a, b := c.controls[0], c.controls[1]
	if code, err := post("http://"+a.ip+":8080/api/v1/streams", token, map[string]string{"app": "live", "name": "ack-1"}); code != 201 {
		t.Fatalf("create stream through %s: %d %v", a.name, code, err)
	}
	resetGaps(players)
	counts := c.playerCounts(players)
	kill := time.Now()
	a.proc.Kill()
	var worst time.Duration
	for _, n := range slices.Concat(c.origins, c.edges, c.cgs, []*node{c.hlsOrigin}, c.cdnEdges) {
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

	c.mark("step 2")
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
	resetGaps(players)
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

	c.mark("step 3")
	// Step 3: kill -9 of the concierge running the HLS task: each task it
	// ran runs again on the other within 10 s, never twice at once, with a
	// new epoch; the others stay where they are; the HLS playlists go on
	// advancing (the new runner's segments are listed).
	var cgVictim *node
	for _, n := range c.cgs {
		if n.name == tasks[models.TypeHLS].NodeName {
			cgVictim = n
		}
	}
	kill = time.Now()
	cgVictim.proc.Kill()
	for _, k := range kinds {
		old := tasks[k]
		if old.NodeName != cgVictim.name {
			continue
		}
		moved := c.waitTask(ctx, store, s1.ID, k, cgVictim.name, markers, kindOf)
		took := time.Since(kill)
		t.Logf("step 3, kill -9 %s: %s task running on %s (epoch %d → %d) after %v", cgVictim.name, k, moved.NodeName, old.Epoch, moved.Epoch, took.Round(time.Millisecond))
		if took > taskRecovery {
			t.Errorf("step 3: the %s task ran again after %v, want ≤ %v", k, took, taskRecovery)
		}
		if moved.Epoch <= old.Epoch {
			t.Errorf("step 3: %s epoch %d after the move, want > %d", k, moved.Epoch, old.Epoch)
		}
		tasks[k] = moved
	}
	// The old runner is gone (waitTask saw one process): what is listed
	// now is its last; a higher sequence is the new runner's.
	seqMoved, _ := hls.seq()
	testutil.Eventually(t, taskRecovery, "the HLS playlist advancing after the move", func() bool {
		seq, _ := hls.seq()
		return seq > seqMoved
	})
	_, advanced := hls.seq()
	t.Logf("step 3: the new HLS runner's first segment listed %v after the kill", advanced.Sub(kill).Round(time.Millisecond))
	probeCtx, cancelProbe := context.WithTimeout(ctx, 30*time.Second)
	if _, err := peers.ProbeUntil(t, probeCtx, nginx.RTMPURL("live", "copy")); err != nil {
		t.Errorf("step 3: the restream target has no stream: %v", err)
	}
	cancelProbe()

	c.mark("step 4")
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

	c.mark("step 5")
	// Step 5: 100 ms delay and 2 % loss on the surviving origin's link
	// (every edge pulls through it): players go on.
	survivor.in.Impair(100*time.Millisecond, 0.02)
	counts = c.playerCounts(players)
	resetGaps(players)
	gap = c.checkPlayers("step 5 (impaired)", players, counts, 250)
	survivor.in.Impair(0, 0)
	t.Logf("step 5, 100 ms delay and 2 %% loss on %s's link for 5 s of media: players kept playing, worst gap %d ms", survivor.name, gap.Milliseconds())

	c.mark("step 6")
	// Step 6: restart the killed replica, origin and concierge (same
	// addresses); the origin takes the publish again and the API lists
	// both origins; the concierge runs nothing stale (every task stays
	// where it is, with its epoch, in one process).
	c.start(a)
	c.start(victim)
	c.start(cgVictim)
	publish(victim)
	c.checkAPI(ctx, token, s1.ID, "live/s1", "step 6")
	c.waitHeartbeatAfter(ctx, store, cgVictim.name, time.Now())
	time.Sleep(3 * heartbeat) // observation window: a stale runner would start here
	c.checkTasksStayed(ctx, store, "step 6", tasks, markers, kindOf)
	c.checkPlayers("step 6", players, nil, 0)

	c.mark("step 7")
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

	c.mark("step 8")
	// Step 8: Postgres crashes (pg_ctl stop -m immediate) and restarts
	// after pgOutage, longer than the alive window, so every heartbeat in
	// it is stale when it returns. Players keep playing; what was
	// acknowledged before is there; no node is declared dead and no task
	// is reassigned (the replicas' death gate, portier/sched.DeathGate);
	// the API agrees with the relays again; the HLS playlists advance.
	c.restartPostgres(ctx, store, token, s1.ID, s2.ID, players, tasks, markers, kindOf, hls)

	for k, n := range runners.result() {
		if n > 1 {
			t.Errorf("the %s task ran %d times at once, want never more than 1 (fencing)", k, n)
		}
	}
	c.mark("end")
	hls.stop()
	c.checkHLS(hls)
	c.checkRecordings(ctx, s1.ID)
	for _, p := range pubs {
		if p != pubs[victim.name] && p.Exited() {
			t.Errorf("publisher %s ended: %s", p.Name(), tail(p.Stderr(), 2000))
		}
	}
	t.Logf("cluster test done in %v", time.Since(t0).Round(time.Second))
}

func resetGaps(players map[string][]*rtmpplayer.Player) {
	for _, ps := range players {
		for _, p := range ps {
			p.ResetGap()
		}
	}
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

// waitTask waits until the stream's task of type typ runs: one task row
// of that type that should run is running on a concierge other than not,
// in one process, and every other row of the type (an earlier live
// session's) is stopped.
func (c *cluster) waitTask(ctx context.Context, store *models.Store, streamID int64, typ, not string, markers []string, kindOf func(string) string) models.Task {
	c.t.Helper()
	var task models.Task
	testutil.EventuallyErr(c.t, 30*time.Second, "the "+typ+" task running", func() (bool, error) {
		ts, _, err := store.ListTasks(ctx, models.TaskFilter{StreamID: streamID})
		if err != nil {
			return false, err
		}
		var desc []string
		running := 0
		for _, tk := range ts {
			if tk.Type != typ {
				continue
			}
			desc = append(desc, fmt.Sprintf("task %d desired %s state %s on %q epoch %d (%s)", tk.ID, tk.DesiredState, tk.State, tk.NodeName, tk.Epoch, tk.Reason))
			switch {
			case tk.DesiredState == models.DesiredRunning && tk.State == models.TaskRunning && tk.NodeName != not:
				running++
				task = tk
			case tk.State != models.TaskStopped:
				running += 2 // not settled
			}
		}
		n := len(taskProcs(markers, kindOf)[typ])
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
