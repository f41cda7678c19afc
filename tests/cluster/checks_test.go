package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
	"github.com/portier/portier/tests/rtmpplayer"
)

// pgOutage is how long step 8 waits between the crash and the start of
// Postgres: the alive window. The start (crash recovery) adds to it, so
// every node's last heartbeat is older than the alive window when the
// database returns: the case the replicas' death gate exists for.
const pgOutage = nodewire.AliveHeartbeats * heartbeat

// call sends a JSON request with a bearer token and decodes a 2xx answer
// into out.
func call(method, u, token string, in, out any) (int, error) {
	var body bytes.Buffer
	if in != nil {
		json.NewEncoder(&body).Encode(in)
	}
	req, err := http.NewRequest(method, u, &body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// startHLSViewers waits until the stream's HLS plays through the second
// replica's rewriter (the first is killed in step 1) and starts the
// viewers and the checker on it.
func (c *cluster) startHLSViewers(ctx context.Context, token string, streamID int64) *hlsWatch {
	c.t.Helper()
	cp := c.controls[1]
	var master string
	testutil.EventuallyErr(c.t, 30*time.Second, "the stream's HLS playing", func() (bool, error) {
		var view struct {
			Play struct {
				HLS string `json:"hls"`
			} `json:"play"`
		}
		if code, err := call("GET", "http://"+cp.ip+":8080/api/v1/streams/"+strconv.FormatInt(streamID, 10), token, nil, &view); code != 200 {
			return false, fmt.Errorf("GET stream: %d %v", code, err)
		}
		if master = view.Play.HLS; master == "" {
			return false, fmt.Errorf("no play.hls")
		}
		ch := hlscheck.NewChecker()
		if _, err := ch.Poll(fetchURL, master); err != nil {
			return false, err
		}
		for _, u := range ch.URLs() {
			if vs := ch.Versions(u); len(vs) > 0 && len(vs[len(vs)-1].Segments) >= hlsLiveSync {
				return true, nil
			}
		}
		return false, fmt.Errorf("fewer than %d segments listed", hlsLiveSync)
	})
	w := watchHLS(master, 4)
	testutil.Eventually(c.t, 10*time.Second, "the HLS checker reading", func() bool { s, _ := w.seq(); return s > 0 })
	return w
}

// checkTasksStayed asserts that every task is where it was, with its
// epoch, running in one process.
func (c *cluster) checkTasksStayed(ctx context.Context, store *models.Store, step string, tasks map[string]models.Task, markers []string, kindOf func(string) string) {
	c.t.Helper()
	procs := taskProcs(markers, kindOf)
	for k, tk := range tasks {
		cur, err := store.TaskByID(ctx, tk.ID)
		if err != nil || cur.NodeName != tk.NodeName || cur.Epoch != tk.Epoch || cur.State != models.TaskRunning || len(procs[k]) != 1 {
			c.t.Errorf("%s: %s task: %+v %v, %d processes; want running on %s epoch %d in one process", step, k, cur, err, len(procs[k]), tk.NodeName, tk.Epoch)
		}
	}
}

// restartPostgres is step 8 (see TestCluster).
func (c *cluster) restartPostgres(ctx context.Context, store *models.Store, token string, s1, s2 int64, players map[string][]*rtmpplayer.Player,
	tasks map[string]models.Task, markers []string, kindOf func(string) string, hls *hlsWatch) {
	t := c.t
	t.Helper()
	b := c.controls[1]
	// Acknowledged before the crash: a stream created and a key rotated
	// through the API, and every audit event so far.
	if code, err := call("POST", "http://"+b.ip+":8080/api/v1/streams", token, map[string]string{"app": "live", "name": "ack-2"}, nil); code != 201 {
		t.Fatalf("step 8: create stream through %s: %d %v", b.name, code, err)
	}
	var rotated struct {
		Key string `json:"key"`
	}
	if code, err := call("POST", "http://"+b.ip+":8080/api/v1/streams/"+strconv.FormatInt(s2, 10)+"/rotate-key", token, nil, &rotated); code != 200 || rotated.Key == "" {
		t.Fatalf("step 8: rotate the key of s2: %d %v", code, err)
	}
	evs, _, err := store.ListAudit(ctx, models.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	before := taskProcs(markers, kindOf)
	counts := c.playerCounts(players)
	leavesURL, leavesMetric := "http://"+b.ip+":8080/metrics", "portier_hls_rewriter_edge_leaves_total"
	leaves0, err := metricValue(leavesURL, leavesMetric)
	if err != nil {
		t.Fatal(err)
	}
	crash := time.Now()
	if err := c.pg.Crash(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pgOutage) // the outage itself
	if err := c.pg.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("step 8: Postgres down %v (crash, then crash recovery at start)", back.Sub(crash).Round(time.Millisecond))
	c.checkPlayers("step 8 (Postgres restart)", players, counts, 100)

	// Every node alive for the control plane; then an observation window
	// past the death gate's hold (an alive window after the return): no
	// node was declared dead, no task moved.
	var all []*node
	for _, n := range slices.Concat(c.origins, c.edges, c.cgs, []*node{c.hlsOrigin}, c.cdnEdges) {
		if !n.proc.Exited() {
			all = append(all, n)
			c.waitAlive(ctx, store, n.name, true)
		}
	}
	time.Sleep(time.Until(back.Add(nodewire.AliveWindow(heartbeat) + 2*heartbeat)))
	var deaths []models.AuditEvent
	testutil.EventuallyErr(t, 10*time.Second, "the audit log readable", func() (bool, error) {
		deaths, _, err = store.ListAudit(ctx, models.AuditFilter{Action: "node.dead", Since: crash})
		return err == nil, err
	})
	for _, ev := range deaths {
		t.Errorf("step 8: %s declared dead after the Postgres restart (%s)", ev.Node, ev.Reason)
	}
	c.checkAPI(ctx, token, s1, "live/s1", "step 8")
	after := map[string][]int{}
	moved := 0
	for _, k := range slices.Sorted(maps.Keys(tasks)) {
		cur := c.waitTask(ctx, store, s1, k, "", markers, kindOf)
		if cur.ID != tasks[k].ID || cur.NodeName != tasks[k].NodeName || cur.Epoch != tasks[k].Epoch {
			moved++
			t.Errorf("step 8: the %s task moved over the Postgres restart: task %d on %s epoch %d, was task %d on %s epoch %d",
				k, cur.ID, cur.NodeName, cur.Epoch, tasks[k].ID, tasks[k].NodeName, tasks[k].Epoch)
		}
		after[k] = taskProcs(markers, kindOf)[k]
		how := "the same process"
		if !slices.Equal(before[k], after[k]) {
			how = "a new process (a concierge stops its tasks after 4/5 of a lease without a confirmed heartbeat, and starts them again once one is)"
		}
		t.Logf("step 8: the %s task runs on %s at epoch %d in %s", k, cur.NodeName, cur.Epoch, how)
	}
	seq0, _ := hls.seq()
	testutil.Eventually(t, taskRecovery, "the HLS playlist advancing after the Postgres restart", func() bool {
		s, _ := hls.seq()
		return s > seq0
	})
	// No CDN edge died: the rewriter that serves the viewers took none off
	// its ring (a stale heartbeat read right after the outage must not
	// count as a death there either).
	if n, err := metricValue(leavesURL, leavesMetric); err != nil || n != leaves0 {
		t.Errorf("step 8: %s's rewriter saw CDN edges leave %v times over the Postgres restart (%v), want 0: no edge died", b.name, n-leaves0, err)
	}
	if _, err := store.StreamByName(ctx, "live", "ack-2"); err != nil {
		t.Errorf("step 8: stream ack-2, acknowledged before the crash, is lost: %v", err)
	}
	if st, err := store.StreamByID(ctx, s2); err != nil || st.PublishKey != rotated.Key {
		t.Errorf("step 8: the key rotation acknowledged before the crash is lost: %v", err)
	}
	now, _, err := store.ListAudit(ctx, models.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, ev := range now {
		have[ev.ID] = true
	}
	lost := 0
	for _, ev := range evs {
		if !have[ev.ID] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("step 8: %d of %d audit events written before the crash are lost", lost, len(evs))
	}
	t.Logf("step 8, Postgres crash and restart: %d nodes alive again, %d node.dead events, %d tasks moved, %d of %d audit events lost",
		len(all), len(deaths), moved, lost, len(evs))
}

// checkHLS asserts what the HLS viewers and the checker saw over the run.
func (c *cluster) checkHLS(w *hlsWatch) {
	t := c.t
	t.Helper()
	cdn := map[string]bool{}
	for _, n := range c.cdnEdges {
		cdn[n.ip+":8095"] = true
	}
	var worst time.Duration
	var worstAt time.Time
	stalls, segs := 0, 0
	edges := map[string]int{}
	perStep := map[string]time.Duration{} // the longest stall that began in each step
	for i, v := range w.sim.Viewers {
		if v.Err != nil || v.Segments == 0 {
			t.Errorf("HLS viewer %d: %d segments, %v", i, v.Segments, v.Err)
		}
		segs += v.Segments
		for h, n := range v.Edges {
			edges[h] += n
			if !cdn[h] {
				t.Errorf("HLS viewer %d read segments from %s, not a CDN edge", i, h)
			}
		}
		for _, s := range v.Stalls {
			stalls++
			if s.Duration > worst {
				worst, worstAt = s.Duration, s.At
			}
			step := c.stepAt(s.At)
			perStep[step] = max(perStep[step], s.Duration.Round(time.Millisecond))
		}
	}
	w.mu.Lock()
	reads, readErrs, byEdge := w.reads, w.readErrs, w.edges
	w.mu.Unlock()
	t.Logf("HLS: %d viewers played %d segments (per edge %v); %d stalls, the longest %v in %s (bound %v), the longest per step %v; the checker read %d segments through %v, %d read errors",
		len(w.sim.Viewers), segs, edges, stalls, worst.Round(time.Millisecond), c.stepAt(worstAt), hlsStallBound, perStep, reads, byEdge, readErrs)
	if n, err := metricValue("http://"+c.controls[1].ip+":8080/metrics", "portier_hls_rewriter_edge_leaves_total"); err == nil {
		t.Logf("HLS: %s's rewriter took CDN edges off its ring %v times in the whole run (no CDN edge died)", c.controls[1].name, n)
	}
	if worst > hlsStallBound {
		t.Errorf("HLS: a viewer stalled %v, want ≤ %v", worst, hlsStallBound)
	}
	if readErrs > 0 {
		t.Errorf("HLS: %d reads of listed segments failed", readErrs)
	}
	for _, p := range w.check.Problems() {
		t.Errorf("HLS: %s", p)
	}
}

// checkRecordings asserts that the record task left segments that ffprobe
// reads with video.
func (c *cluster) checkRecordings(ctx context.Context, streamID int64) {
	t := c.t
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(compile.RecordingDir(c.recordDir, streamID), "*.mp4"))
	if len(files) < 2 {
		t.Errorf("recordings: %d files in %s, want at least 2", len(files), compile.RecordingDir(c.recordDir, streamID))
	}
	var size int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
		r, err := peers.Probe(t, ctx, f)
		if err == nil {
			if _, ok := r.Video(); !ok {
				err = fmt.Errorf("no video stream in %v", r.Codecs())
			}
		}
		if err != nil {
			t.Errorf("recording %s: %v", filepath.Base(f), err)
		}
	}
	t.Logf("recordings: %d files, %d KiB, each read by ffprobe", len(files), size>>10)
}

// metricValue reads one unlabelled sample from a Prometheus text page.
func metricValue(u, name string) (float64, error) {
	b, err := fetchURL(u)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", name, u)
}
