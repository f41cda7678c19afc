// Command schedload is a lightweight concierge for the scheduler benchmark
// (tests/bench/sched_bench_test.go): it speaks the real concierge API of the
// control plane (register, heartbeat, long-poll the assignment, report task
// states) but runs `sleep` for each task instead of its ffmpeg command and
// has no supervisord. Each task is one real `sleep` process that dies with
// schedload (Pdeathsig), so a kill -9 of schedload is the loss of a host.
//
//	schedload --control URL --cluster-token T --name NAME --capacity N
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/portier/portier/concierge/wire"
)

func main() {
	control := flag.String("control", "", "control plane base URL")
	token := flag.String("cluster-token", "", "cluster token")
	name := flag.String("name", "", "concierge name")
	capacity := flag.Int("capacity", 100, "CPU cores registered as the task-cost budget")
	sleepFor := flag.Int("sleep", 3600, "seconds each task's sleep runs")
	reporters := flag.Int("reporters", 1, "concurrent status reports")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", *name)
	if *control == "" || *name == "" {
		fmt.Fprintln(os.Stderr, "schedload: --control and --name are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	l := &loader{base: *control, token: *token, name: *name, sleep: strconv.Itoa(*sleepFor), log: log,
		hc:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *reporters + 4}},
		procs: map[int64]*proc{}, reports: make(chan report, 4096)}
	if err := l.run(ctx, *capacity, *reporters); err != nil && ctx.Err() == nil {
		log.Error("schedload stopped", "err", err)
		l.killAll()
		os.Exit(1)
	}
	l.killAll()
}

type proc struct {
	epoch int64
	cmd   *exec.Cmd
}

type report struct {
	id    int64
	epoch int64
	state string
}

type loader struct {
	base, token, name, sleep string
	log                      *slog.Logger
	hc                       *http.Client
	reports                  chan report

	mu    sync.Mutex
	procs map[int64]*proc // by task id
}

// call does one JSON request; it returns the HTTP status.
func (l *loader) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (l *loader) run(ctx context.Context, capacity, reporters int) error {
	var reg struct {
		HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms"`
	}
	code, err := l.call(ctx, "POST", "/internal/v1/nodes/register", map[string]any{
		"name": l.name, "role": "concierge", "capacity": capacity, "labels": map[string]string{}, "version": "schedload",
	}, &reg)
	if err != nil || code != 200 {
		return fmt.Errorf("register: HTTP %d %v", code, err)
	}
	hb := time.Duration(reg.HeartbeatIntervalMS) * time.Millisecond
	if hb <= 0 {
		hb = time.Second
	}
	go l.heartbeat(ctx, hb)
	for range reporters {
		go l.reporter(ctx)
	}
	version := ""
	for ctx.Err() == nil {
		var a wire.Assignment
		path := fmt.Sprintf(wire.PathAssignments, url.PathEscape(l.name)) + "?after=" + url.QueryEscape(version) + "&wait_ms=25000"
		code, err := l.call(ctx, "GET", path, nil, &a)
		if err != nil || code != 200 {
			if ctx.Err() != nil {
				return nil
			}
			l.log.Warn("long poll failed", "code", code, "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		version = a.Version
		l.reconcile(a)
	}
	return nil
}

func (l *loader) heartbeat(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		n := len(l.procs)
		l.mu.Unlock()
		code, err := l.call(ctx, "POST", "/internal/v1/nodes/"+url.PathEscape(l.name)+"/heartbeat",
			map[string]any{"load": map[string]int{"streams": n, "cost_used": n}}, nil)
		if (err != nil || code != 200) && ctx.Err() == nil {
			l.log.Warn("heartbeat failed", "code", code, "err", err)
		}
	}
}

// reconcile starts a sleep for every task to run and stops every other one.
func (l *loader) reconcile(a wire.Assignment) {
	want := map[int64]wire.Task{}
	for _, t := range a.Tasks {
		if t.DesiredState == "running" {
			want[t.ID] = t
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range l.procs {
		if t, ok := want[id]; ok && t.Epoch == p.epoch {
			continue
		}
		l.kill(p)
		delete(l.procs, id)
	}
	for _, t := range a.Tasks {
		if t.DesiredState != "running" {
			if t.State != "stopped" {
				l.reports <- report{t.ID, t.Epoch, "stopped"}
			}
			continue
		}
		if _, ok := l.procs[t.ID]; ok {
			continue
		}
		cmd := exec.Command("sleep", l.sleep)
		cmd.Env = []string{"PORTIER_TASK_ID=" + strconv.FormatInt(t.ID, 10)}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			l.log.Warn("start sleep", "task", t.ID, "err", err)
			l.reports <- report{t.ID, t.Epoch, "backoff"}
			continue
		}
		go func() { _ = cmd.Wait() }()
		l.procs[t.ID] = &proc{epoch: t.Epoch, cmd: cmd}
		l.reports <- report{t.ID, t.Epoch, "running"}
	}
}

func (l *loader) kill(p *proc) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

func (l *loader) killAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range l.procs {
		l.kill(p)
		delete(l.procs, id)
	}
}

// reporter sends status reports as the concierge does: whatever has
// queued up goes in one batch (wire.PathStatusBatch); a stale epoch or
// unknown task stops that task.
func (l *loader) reporter(ctx context.Context) {
	for {
		var batch []report
		select {
		case <-ctx.Done():
			return
		case r := <-l.reports:
			batch = append(batch, r)
		}
	more:
		for len(batch) < wire.MaxStatusBatch {
			select {
			case r := <-l.reports:
				batch = append(batch, r)
			default:
				break more
			}
		}
		b := wire.StatusBatch{Reports: make([]wire.TaskStatusReport, len(batch))}
		for i, r := range batch {
			b.Reports[i] = wire.TaskStatusReport{TaskID: r.id, StatusReport: wire.StatusReport{Epoch: r.epoch, State: r.state}}
		}
		var ans wire.StatusBatchAnswer
		code, err := l.call(ctx, "POST", fmt.Sprintf(wire.PathStatusBatch, url.PathEscape(l.name)), b, &ans)
		if err != nil || code != 200 || len(ans.Results) != len(batch) {
			if ctx.Err() == nil {
				l.log.Warn("reports failed", "reports", len(batch), "code", code, "err", err)
			}
			continue
		}
		for i, res := range ans.Results {
			if res.Error == nil || (res.Error.Code != wire.CodeStaleEpoch && res.Error.Code != wire.CodeUnknownTask) {
				continue
			}
			r := batch[i]
			l.mu.Lock()
			if p, ok := l.procs[r.id]; ok && p.epoch == r.epoch {
				l.kill(p)
				delete(l.procs, r.id)
			}
			l.mu.Unlock()
		}
	}
}
