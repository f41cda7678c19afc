package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/portiertest"
)

// BenchmarkScheduler is the scheduler under load on Postgres: the control
// plane is portier.New served over loopback HTTP in this process (fresh
// Postgres schema, default heartbeat 1 s, so a 5 s lease); 20 concierges
// are separate `schedload` processes (tests/bench/cmd/schedload: the real
// concierge API — register, heartbeat, long poll, status reports — with one
// `sleep` process per task instead of ffmpeg under supervisord). 1,000
// streams with 3 task configs each (restream, record, HLS) go live at once
// through the relay's publish hook (/internal/v1/publish/authorize, 32
// concurrent callers). It reports the time until all 3,000 tasks are
// assigned and until all are reported running, the spread of tasks over the
// concierges, and the failover time when 5 concierges are killed (SIGKILL)
// at once: until every one of their tasks runs on another concierge.
func BenchmarkScheduler(b *testing.B) {
	const (
		streams     = 1000
		perStream   = 3
		concierges  = 20
		killed      = 5
		capacity    = 250 // 15 survivors hold 3,000 tasks
		callers     = 32
		phaseLimit  = 90 * time.Second
		clusterTok  = "bench-sched-token"
		originName  = "bench-origin"
		heartbeatIv = time.Second
	)
	dsn, ok := modelstest.Schema(b)
	if !ok {
		b.Fatal("BenchmarkScheduler needs Postgres: set PORTIER_TEST_POSTGRES_URL")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := models.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	cp := portiertest.Start(b, portiertest.Options{Store: store, Params: portier.Params{ClusterToken: clusterTok,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Live: portier.LiveParams{HeartbeatInterval: heartbeatIv, Compile: compile.Env{
			RelayRTMPURL: "rtmp://127.0.0.1:1935", RecordDir: filepath.Join(b.TempDir(), "rec"), HLSOriginURL: "http://127.0.0.1:8090",
		}}}})
	hs := cp.HTTP

	// Streams and task configs (setup, not timed).
	t0 := time.Now()
	u, err := store.CreateUser(ctx, "bench", "bench-password-123", models.RoleOperator)
	if err != nil {
		b.Fatal(err)
	}
	// The application "live" is created by the first stream; the others
	// then run in parallel.
	if _, err := store.CreateStream(ctx, "live", "warmup", u.ID); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, streams)
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	sem := make(chan struct{}, 8)
	for i := range streams {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			st, err := store.CreateStream(ctx, "live", fmt.Sprintf("s%04d", i), u.ID)
			if err != nil {
				errs <- err
				return
			}
			keys[i] = st.PublishKey
			for _, c := range []struct{ typ, spec string }{
				{models.TypeRestream, `{"target":"rtmp://127.0.0.1:1/live","key":"k` + fmt.Sprint(i) + `"}`},
				{models.TypeRecord, `{"segment_seconds":60,"format":"ts"}`},
				{models.TypeHLS, `{"renditions":[{"name":"360p","width":640,"height":360,"video_bitrate_kbps":800}]}`},
			} {
				if err := store.CreateTaskConfig(ctx, &models.TaskConfig{StreamID: st.ID, Type: c.typ, Name: c.typ, Enabled: true, Spec: models.RawJSON(c.spec)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("setup: %d streams with %d task configs each in %v", streams, perStream, time.Since(t0).Round(time.Millisecond))

	// An origin that holds the publishes (heartbeating, so they stay live).
	post := func(path string, body any) (int, []byte, error) {
		bb, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+path, bytes.NewReader(bb))
		req.Header.Set("Authorization", "Bearer "+clusterTok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes(), nil
	}
	if code, body, err := post("/internal/v1/nodes/register", map[string]any{"name": originName, "role": "origin", "rtmp_address": "127.0.0.1:1935", "capacity": 0, "labels": map[string]string{}}); err != nil || code != 200 {
		b.Fatalf("register origin: %d %s %v", code, body, err)
	}
	go func() {
		tk := time.NewTicker(heartbeatIv)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				post("/internal/v1/nodes/"+originName+"/heartbeat", map[string]any{"load": map[string]int{"streams": streams}})
			}
		}
	}()

	// 20 schedload concierges.
	bin := filepath.Join(b.TempDir(), "schedload")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/portier/portier/tests/bench/cmd/schedload").CombinedOutput(); err != nil {
		b.Fatalf("build schedload: %v\n%s", err, out)
	}
	type loadProc struct {
		name string
		cmd  *exec.Cmd
		done chan struct{}
	}
	procs := make([]*loadProc, concierges)
	for i := range procs {
		p := &loadProc{name: fmt.Sprintf("load-%02d", i), done: make(chan struct{})}
		p.cmd = exec.Command(bin, "--control", hs.URL, "--cluster-token", clusterTok, "--name", p.name, "--capacity", fmt.Sprint(capacity))
		p.cmd.Stderr = os.Stderr
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() { p.cmd.Wait(); close(p.done) }()
		procs[i] = p
	}
	b.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	schedWaitFor(b, "20 concierges registered", phaseLimit, func() bool {
		ns, _ := store.ListNodes(ctx, models.NodeRoleConcierge)
		return len(ns) == concierges
	})

	total := streams * perStream
	counts := func() (assigned, running int) {
		row := store.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE node_name <> '' AND node_name IS NOT NULL),
			count(*) FILTER (WHERE state = 'running') FROM tasks WHERE desired_state = 'running'`).Row()
		_ = row.Scan(&assigned, &running)
		return
	}

	// 1,000 streams go live at once.
	b.ResetTimer()
	start := time.Now()
	jobs := make(chan int)
	var liveWG sync.WaitGroup
	var failMu sync.Mutex
	var liveFail []string
	for range callers {
		liveWG.Add(1)
		go func() {
			defer liveWG.Done()
			for i := range jobs {
				code, body, err := post("/internal/v1/publish/authorize", map[string]any{
					"node": originName, "app": "live", "name": fmt.Sprintf("s%04d", i), "query": "key=" + keys[i], "addr": "127.0.0.1:5000", "protocol": "rtmp"})
				if err != nil || code != 200 || !strings.Contains(string(body), `"allow":true`) {
					failMu.Lock()
					liveFail = append(liveFail, fmt.Sprintf("s%04d: %d %s %v", i, code, body, err))
					failMu.Unlock()
				}
			}
		}()
	}
	go func() {
		for i := range streams {
			jobs <- i
		}
		close(jobs)
	}()
	var allLive time.Duration
	go func() { liveWG.Wait(); allLive = time.Since(start) }()
	var allAssigned, allRunning time.Duration
	deadline := start.Add(phaseLimit)
	for allRunning == 0 {
		if time.Now().After(deadline) {
			a, r := counts()
			b.Fatalf("after %v: %d of %d tasks assigned, %d running", phaseLimit, a, total, r)
		}
		a, r := counts()
		if a >= total && allAssigned == 0 {
			allAssigned = time.Since(start)
		}
		if r >= total {
			allRunning = time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	liveWG.Wait()
	if len(liveFail) > 0 {
		b.Fatalf("%d publishes refused, first: %s", len(liveFail), liveFail[0])
	}

	// The scheduler's own share: per task, from its creation (the stream
	// went live and its config compiled) to the running report.
	var lat []float64
	if err := store.DB.WithContext(ctx).Raw(`SELECT EXTRACT(EPOCH FROM (started_at - created_at)) FROM tasks
		WHERE desired_state = 'running' AND started_at IS NOT NULL ORDER BY 1`).Scan(&lat).Error; err != nil || len(lat) != total {
		b.Fatalf("task latencies: %d rows, %v", len(lat), err)
	}
	pct := func(p float64) time.Duration {
		return time.Duration(lat[min(len(lat)-1, int(p*float64(len(lat))))] * float64(time.Second))
	}

	// Spread of load over the concierges.
	per := schedPerNode(b, ctx, store)
	mn, mx, sd := schedSpread(per, concierges)
	b.Logf("1,000 streams live (hook answered) after %v; %d tasks assigned after %v, all reported running after %v",
		allLive.Round(time.Millisecond), total, allAssigned.Round(time.Millisecond), allRunning.Round(time.Millisecond))
	b.Logf("per task, creation to reported running: p50 %v, p90 %v, p99 %v, max %v",
		pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
	b.Logf("tasks per concierge: min %d, max %d, stddev %.2f (ideal %d)", mn, mx, sd, total/concierges)

	// Kill 5 concierges at once (SIGKILL: their sleeps die with them).
	victims := map[string]bool{}
	var moved int
	for _, p := range procs[:killed] {
		victims[p.name] = true
		moved += per[p.name]
	}
	var victimTasks []int64
	store.DB.WithContext(ctx).Raw(`SELECT id FROM tasks WHERE desired_state = 'running' AND node_name IN ?`, schedKeys(victims)).Scan(&victimTasks)
	kill := time.Now()
	for _, p := range procs[:killed] {
		_ = p.cmd.Process.Kill()
	}
	var failover, reassigned time.Duration
	deadline = kill.Add(phaseLimit)
	for failover == 0 {
		var n, m int
		store.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE state = 'running'), count(*) FROM tasks
			WHERE id IN ? AND node_name <> '' AND node_name NOT IN ?`, victimTasks, schedKeys(victims)).Row().Scan(&n, &m)
		if m == len(victimTasks) && reassigned == 0 {
			reassigned = time.Since(kill)
		}
		if n == len(victimTasks) {
			failover = time.Since(kill)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %v only %d of %d tasks of the killed concierges run elsewhere", phaseLimit, n, len(victimTasks))
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	after := schedPerNode(b, ctx, store)
	amn, amx, asd := schedSpread(after, concierges-killed)
	b.Logf("kill -9 of %d concierges holding %d tasks: all assigned elsewhere after %v, all running elsewhere after %v (lease %v); survivors now hold min %d, max %d, stddev %.2f",
		killed, len(victimTasks), reassigned.Round(time.Millisecond), failover.Round(time.Millisecond), 5*heartbeatIv, amn, amx, asd)
	b.ReportMetric(allAssigned.Seconds(), "s_assigned")
	b.ReportMetric(allRunning.Seconds(), "s_running")
	b.ReportMetric(allLive.Seconds(), "s_all_live")
	b.ReportMetric(pct(0.99).Seconds(), "s_task_p99")
	b.ReportMetric(float64(mn), "min_tasks/concierge")
	b.ReportMetric(float64(mx), "max_tasks/concierge")
	b.ReportMetric(sd, "stddev_tasks")
	b.ReportMetric(failover.Seconds(), "s_failover")
	if len(victimTasks) != moved {
		b.Errorf("the killed concierges held %d tasks by count, %d by id", moved, len(victimTasks))
	}
}

// schedPerNode counts running tasks per node.
func schedPerNode(b *testing.B, ctx context.Context, store *models.Store) map[string]int {
	var rows []struct {
		NodeName string
		N        int
	}
	if err := store.DB.WithContext(ctx).Raw(`SELECT node_name, count(*) AS n FROM tasks WHERE state = 'running' GROUP BY node_name`).Scan(&rows).Error; err != nil {
		b.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.NodeName] = r.N
	}
	return out
}

// schedSpread is min, max and population standard deviation over n nodes
// (nodes with no task count as 0).
func schedSpread(per map[string]int, n int) (int, int, float64) {
	vals := make([]int, 0, n)
	for _, v := range per {
		vals = append(vals, v)
	}
	for len(vals) < n {
		vals = append(vals, 0)
	}
	sort.Ints(vals)
	sum := 0
	for _, v := range vals {
		sum += v
	}
	mean := float64(sum) / float64(len(vals))
	var sq float64
	for _, v := range vals {
		sq += (float64(v) - mean) * (float64(v) - mean)
	}
	return vals[0], vals[len(vals)-1], math.Sqrt(sq / float64(len(vals)))
}

func schedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func schedWaitFor(b *testing.B, what string, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
