package concierge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/redact"
)

const (
	progPrefix   = "task-"
	logTailBytes = 4096
	// stableAfter: a task that ran this long before failing starts its
	// backoff from the minimum again.
	stableAfter = 30 * time.Second
	// startedAfter: a process up this long is reported running.
	startedAfter = time.Second
)

// progName is the supervisord program of a task at an epoch: a new epoch is
// a new program, so a reassignment never reuses a fenced process.
func progName(id, epoch int64) string { return fmt.Sprintf("%s%d-e%d", progPrefix, id, epoch) }

// run is the concierge's view of one task at one epoch.
type run struct {
	task      wire.Task
	desc      wire.Description
	descErr   error
	name      string
	reported  string    // last state the control plane accepted
	failures  int       // consecutive failures (backoff exponent)
	nextStart time.Time // when a task in backoff starts again
	startedAt time.Time
	// progressAt is when the task's progress was last sampled, progress
	// what was reported then, progressMoved when it last changed.
	progressAt, progressMoved time.Time
	progress                  wire.Progress
	fenced                    bool // the control plane refused a report: never run again
	red                       *redact.Redactor
}

// newRun is the run of t; relay is the base URL of the relay near this host
// ("" for none): the task reads its stream from there (and a pull publishes
// there), not from the control plane's fallback relay.
func newRun(t wire.Task, relay string) *run {
	r := &run{task: t, name: progName(t.ID, t.Epoch)}
	if err := json.Unmarshal(t.Description, &r.desc); err != nil {
		r.descErr = fmt.Errorf("task description: %w", err)
	} else if r.desc.Command == "" {
		r.descErr = errors.New("task description has no command")
	}
	r.desc = r.desc.Rebase(relay)
	if r.descErr == nil {
		// The credential names this epoch: a runner fenced off by a
		// failover keeps its old one, which the HLS origin refuses once
		// the new runner has written.
		r.desc, r.descErr = r.desc.WithCredential(t.Credential)
	}
	return r
}

// relayBase is Params.RelayRTMP as a base URL (it may be host:port).
func (c *Concierge) relayBase() string {
	r := strings.TrimRight(c.p.RelayRTMP, "/")
	if r != "" && !strings.Contains(r, "://") {
		r = "rtmp://" + r
	}
	return r
}

// redactor knows the secrets of r's command line (keys, tokens, URL
// credentials): reports and logs carry ffmpeg's lines, which name them.
func (r *run) redactor() *redact.Redactor {
	if r.red == nil {
		var d wire.Description
		_ = json.Unmarshal(r.task.Description, &d)
		r.red = redact.New(append(redact.TaskSecrets(r.task.Type, d.Args), r.task.Credential)...)
	}
	return r.red
}

// reconcile makes supervisord run exactly the tasks that should run here.
func (c *Concierge) reconcile(ctx context.Context) {
	c.reconMu.Lock()
	defer c.reconMu.Unlock()
	defer c.flushReports(ctx)
	defer c.flushRecordings(ctx)
	c.mu.Lock()
	a, have, draining := c.assign, c.haveAsg, c.draining
	c.mu.Unlock()
	if !have {
		return // nothing is known yet: touch nothing
	}
	progs, err := c.drv.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("supervisord unavailable; will retry", "err", err)
		}
		return
	}
	c.scanRecordings(progs)
	cut := c.cutOff()
	if cut && !c.fencedLog {
		c.log.Warn("no heartbeat confirmed for most of a lease: stopping every task (another concierge may take them over)")
	}
	c.fencedLog = cut

	desired := map[string]wire.Task{}
	stopWanted := map[string]wire.Task{}
	cost := 0
	for _, t := range a.Tasks {
		name := progName(t.ID, t.Epoch)
		if t.DesiredState == "running" && !cut {
			desired[name] = t
		} else {
			stopWanted[name] = t
		}
	}

	// Stop and remove every program that should not run (unknown, older
	// epochs, stopped, fenced), except while draining: then a task keeps
	// running until its new runner runs (make before break).
	files, _ := c.drv.Files()
	present := map[string]bool{}
	for name := range progs {
		present[name] = true
	}
	for _, f := range files {
		present[f] = true
	}
	for name := range present {
		if !strings.HasPrefix(name, progPrefix) {
			continue
		}
		r := c.runs[name]
		if _, ok := desired[name]; ok && (r == nil || !r.fenced) {
			continue
		}
		if draining && !cut && (r == nil || !r.fenced) && progs[name].State.Alive() {
			continue
		}
		if err := c.removeProgram(ctx, name, progs[name].State.Alive()); err != nil {
			c.log.Warn("remove program", "program", name, "err", err)
			continue
		}
		if r == nil || !r.fenced {
			delete(c.runs, name) // a fenced run stays, so it is not started again
		}
		if t, ok := stopWanted[name]; ok && !cut && (r == nil || !r.fenced) {
			c.report(&run{task: t, name: name}, wire.StatusReport{State: "stopped"}, nil)
		}
	}
	// Tasks to stop that this concierge never ran (or ran before a restart).
	for name, t := range stopWanted {
		if _, loaded := progs[name]; loaded || cut || t.State == "stopped" {
			continue
		}
		if r := c.runs[name]; r != nil && r.reported == "stopped" {
			continue
		}
		r := &run{task: t, name: name}
		c.report(r, wire.StatusReport{State: "stopped"}, func() { c.runs[name] = r })
	}
	if c.svRestarted.Swap(false) {
		for _, r := range c.runs {
			if r.reported != "failed" {
				r.reported = "" // its process died with supervisord: start it again
			}
		}
	}
	for name, r := range c.runs {
		if _, ok := desired[name]; !ok && r.reported != "stopped" {
			delete(c.runs, name)
		} else if _, ok := stopWanted[name]; !ok && r.reported == "stopped" {
			delete(c.runs, name)
		}
	}

	running := 0
	for name, t := range desired {
		r := c.runs[name]
		if r == nil {
			r = newRun(t, c.relayBase())
			c.runs[name] = r
		}
		if r.fenced {
			continue
		}
		cost += max(r.desc.Cost, 1)
		pi, loaded := progs[name]
		if pi.State == supervisor.StateRunning {
			running++
		}
		c.step(ctx, r, pi, loaded)
	}
	c.costUsed.Store(int64(cost))
	c.nRunning.Store(int64(running))
}

// step advances one task that should run.
func (c *Concierge) step(ctx context.Context, r *run, pi supervisor.ProcessInfo, loaded bool) {
	now := time.Now()
	if !loaded {
		if r.reported == "failed" {
			return
		}
		if _, err := c.drv.Client().Flavor(ctx); err != nil {
			return // supervisord unavailable: not the task's fault
		}
		prog, err := c.program(ctx, r)
		if err != nil {
			c.report(r, wire.StatusReport{State: "failed", Error: err.Error()}, nil)
			return
		}
		for _, d := range r.desc.Dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				c.report(r, wire.StatusReport{State: "failed", Error: "create directory: " + err.Error()}, nil)
				return
			}
		}
		if err := c.drv.Add(ctx, prog); err != nil {
			c.log.Warn("add program", "program", r.name, "err", r.redactor().String(err.Error()))
			return
		}
		r.reported = "" // loaded: start below
		pi.State = supervisor.StateStopped
	}
	switch pi.State {
	case supervisor.StateRunning:
		// Running counts once the process has stayed up for startedAfter.
		if r.reported != "running" && now.Sub(r.startedAt) >= startedAfter {
			c.report(r, wire.StatusReport{State: "running"}, nil)
		}
		if now.Sub(r.startedAt) > stableAfter {
			r.failures = 0
		}
		if every := time.Duration(c.progressEvery.Load()); every > 0 && r.reported == "running" && now.Sub(r.progressAt) >= every {
			c.sampleProgress(ctx, r, pi, now)
		}
	case supervisor.StateStarting, supervisor.StateStopping:
	default: // STOPPED, EXITED, FATAL, BACKOFF, UNKNOWN
		switch r.reported {
		case "starting", "running":
			c.failed(ctx, r, pi, now)
		case "backoff":
			if now.After(r.nextStart) {
				c.start(ctx, r)
			}
		case "failed":
		default:
			c.start(ctx, r)
		}
	}
}

func (c *Concierge) start(ctx context.Context, r *run) {
	if err := c.drv.Start(ctx, r.name); err != nil {
		c.log.Warn("start program", "program", r.name, "err", err)
		return
	}
	r.startedAt = time.Now()
	c.report(r, wire.StatusReport{State: "starting"}, nil)
}

// failed records an exit and schedules the next start with exponential backoff.
func (c *Concierge) failed(ctx context.Context, r *run, pi supervisor.ProcessInfo, now time.Time) {
	if !r.startedAt.IsZero() && now.Sub(r.startedAt) > stableAfter {
		r.failures = 0
	}
	r.failures++
	delay := c.p.BackoffMin << min(r.failures-1, 16)
	if delay > c.p.BackoffMax || delay <= 0 {
		delay = c.p.BackoffMax
	}
	r.nextStart = now.Add(delay)
	// The log holds progress blocks (see progressArgs) between ffmpeg's
	// messages: read more than is reported, and leave the blocks out.
	tail, _ := c.drv.Tail(ctx, r.name, 4*logTailBytes)
	if len(tail) >= 4*logTailBytes {
		tail = fromLine(tail)
	}
	if tail = stripProgress(tail); len(tail) > logTailBytes {
		tail = fromLine(tail[len(tail)-logTailBytes:])
	}
	code := pi.ExitStatus
	var exit *int
	// ochinchina reports no exit status for FATAL (died within startsecs).
	if code != 0 || pi.State != supervisor.StateFatal {
		exit = &code
	}
	reason := atSource(failureReason(tail, code, pi.SpawnErr), tail, r.desc.Input)
	red := r.redactor()
	tail, reason = red.String(tail), red.String(reason)
	c.m.failures.Inc()
	attrs := []any{"task", r.task.ID, "epoch", r.task.Epoch, "reason", reason, "retry_in", delay}
	if exit != nil { // no exit status is not exit 0
		attrs = append(attrs, "exit", *exit)
	}
	c.log.Warn("task failed", attrs...)
	c.report(r, wire.StatusReport{State: "backoff", ExitCode: exit,
		Error: fmt.Sprintf("%s (retry %d in %s)", reason, r.failures, delay.Round(100*time.Millisecond)), LogTail: tail}, nil)
}

// fromLine drops the first line of a tail that starts inside a line, maybe
// inside a key that redaction would no longer recognise.
func fromLine(tail string) string {
	if i := strings.IndexByte(tail, '\n'); i >= 0 {
		return tail[i+1:]
	}
	return tail
}

// sampleProgress reads the progress a running ffmpeg task wrote last and
// reports it. A task that writes none (not ffmpeg, or no block yet)
// reports nothing.
func (c *Concierge) sampleProgress(ctx context.Context, r *run, pi supervisor.ProcessInfo, now time.Time) {
	r.progressAt = now
	tail, err := c.drv.Tail(ctx, r.name, progressTailBytes)
	if err != nil {
		return
	}
	p, ok := parseProgress(tail)
	if !ok {
		return
	}
	p.UptimeMS = uptime(pi.Start, r.startedAt, now).Milliseconds()
	// ffmpeg writes a block every wire.ProgressEvery: the same block for
	// twice that long means it is stuck.
	if r.progressMoved.IsZero() || p.OutTimeMS != r.progress.OutTimeMS || p.TotalSize != r.progress.TotalSize || p.Frame != r.progress.Frame {
		r.progressMoved = now
	}
	p.Stalled = now.Sub(r.progressMoved) > 2*wire.ProgressEvery
	r.progress = p
	c.report(r, wire.StatusReport{State: "running", Progress: &p}, nil)
}

// pendingReport is a state change waiting for the end of the reconcile pass.
type pendingReport struct {
	r    *run
	st   wire.StatusReport
	onOK func()
}

// report queues a state change; the pass sends its changes together
// (flushReports). Until the control plane accepts it, r.reported keeps the
// previous state, so a lost report is made again by a later pass.
func (c *Concierge) report(r *run, st wire.StatusReport, onOK func()) {
	st.Epoch = r.task.Epoch
	if st.Error != "" || st.LogTail != "" {
		red := r.redactor()
		st.Error, st.LogTail = red.String(st.Error), red.String(st.LogTail)
	}
	c.queue = append(c.queue, pendingReport{r: r, st: st, onOK: onOK})
}

// flushReports sends the pass's state changes in batches and applies each
// answer. A refusal (stale epoch, unknown task) fences the task: it is
// stopped now and never started again by this run.
func (c *Concierge) flushReports(ctx context.Context) {
	for len(c.queue) > 0 {
		n := min(len(c.queue), wire.MaxStatusBatch)
		batch := c.queue[:n]
		b := wire.StatusBatch{Reports: make([]wire.TaskStatusReport, n)}
		for i, p := range batch {
			b.Reports[i] = wire.TaskStatusReport{TaskID: p.r.task.ID, StatusReport: p.st}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ans, err := c.ctl.statusBatch(rctx, c.p.Name, b)
		cancel()
		if err == nil && len(ans.Results) != n {
			err = fmt.Errorf("control plane answered %d results for %d reports", len(ans.Results), n)
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("status reports failed; will report again", "reports", n, "err", err)
			}
			c.queue = c.queue[:0]
			return
		}
		for i, p := range batch {
			res := ans.Results[i]
			switch {
			case res.Error == nil:
				p.r.reported = p.st.State
				c.m.reports.WithLabelValues(p.st.State).Inc()
				if p.onOK != nil {
					p.onOK()
				}
			case (res.Error.Code == wire.CodeStaleEpoch || res.Error.Code == wire.CodeUnknownTask) && p.st.State == "stopped":
				// A stop the control plane ordered (a config disabled, a
				// stream gone) and already recorded: nothing is wrong.
				p.r.reported = p.st.State
				c.log.Debug("stop report not needed: the control plane has the task stopped", "task", p.r.task.ID, "epoch", p.r.task.Epoch, "reason", res.Error.Message)
				if p.onOK != nil {
					p.onOK()
				}
			case res.Error.Code == wire.CodeStaleEpoch || res.Error.Code == wire.CodeUnknownTask:
				if p.r.fenced {
					continue
				}
				c.log.Warn("control plane refused the report: stopping the task", "task", p.r.task.ID, "epoch", p.r.task.Epoch, "reason", res.Error.Message)
				p.r.fenced = true
				c.m.fenced.Inc()
				if err := c.removeProgram(ctx, p.r.name, true); err != nil {
					c.log.Warn("remove fenced program", "program", p.r.name, "err", err)
				}
			default:
				c.log.Warn("status report failed; will report again", "task", p.r.task.ID, "state", p.st.State, "err", res.Error.Message)
			}
		}
		clear(batch)
		c.queue = c.queue[n:]
	}
	c.queue = c.queue[:0]
}

// program builds the supervisord program of a run and checks that this
// supervisord can take its command line unchanged.
func (c *Concierge) program(ctx context.Context, r *run) (supervisor.Program, error) {
	if r.descErr != nil {
		return supervisor.Program{}, r.descErr
	}
	cmd := r.desc.Command
	if cmd == "ffmpeg" {
		cmd = c.ffmp
	} else if p, err := exec.LookPath(cmd); err == nil {
		cmd = p
	} else {
		return supervisor.Program{}, fmt.Errorf("command %q not found on this host", r.desc.Command)
	}
	cmd, _ = filepath.Abs(cmd)
	env := map[string]string{}
	for k, v := range r.desc.Env {
		env[k] = v
	}
	env["PORTIER_TASK_ID"] = strconv.FormatInt(r.task.ID, 10)
	env["PORTIER_TASK_EPOCH"] = strconv.FormatInt(r.task.Epoch, 10)
	if c.p.RelayRTMP != "" {
		env["PORTIER_RELAY_RTMP"] = c.p.RelayRTMP
	}
	logDir := filepath.Join(c.p.DataDir, "logs")
	if c.emb != nil {
		env[supervisor.MarkerEnv] = c.emb.Marker()
		logDir = c.emb.LogDir()
	}
	// ffmpeg's log names the task's URLs and keys: a private directory and
	// a log file made 0600 before supervisord opens it.
	if err := supervisor.PrivateDir(logDir); err != nil {
		return supervisor.Program{}, fmt.Errorf("log dir: %w", err)
	}
	logFile := filepath.Join(logDir, r.name+".log")
	if err := supervisor.PrivateFile(logFile); err != nil {
		return supervisor.Program{}, fmt.Errorf("log file: %w", err)
	}
	// stopwaitsecs bounds how long a task outlives a concierge that died
	// (supervisord gets SIGTERM then, and stops every program): it stays
	// below the lease, so the runner that replaces the task elsewhere
	// rarely overlaps with this one (fencing makes an overlap harmless).
	args := withProgress(cmd, r.desc.Args)
	if r.task.Type == "record" {
		if err := os.MkdirAll(c.segmentDir(), 0o700); err != nil {
			return supervisor.Program{}, fmt.Errorf("segment list dir: %w", err)
		}
		if n := len(r.desc.Args); n > 0 && c.lists[r.name] == nil {
			out := r.desc.Args[n-1]
			c.lists[r.name] = &segList{taskID: r.task.ID, epoch: r.task.Epoch, dir: filepath.Dir(out), ext: filepath.Ext(out), started: time.Now()}
		}
		args = withSegmentList(r.task.Type, c.segmentList(r.name), args)
	}
	p := supervisor.Program{
		Name: r.name, Argv: append([]string{cmd}, args...), Env: env,
		StopWaitSecs: taskStopWaitSecs, LogFile: logFile, LogMaxBytes: 1 << 20, LogBackups: 2,
	}
	f, err := c.drv.Client().Flavor(ctx)
	if err != nil {
		return supervisor.Program{}, err
	}
	if _, err := p.Render(f); err != nil {
		return supervisor.Program{}, err
	}
	return p, nil
}

// removeProgram stops a program and removes it. A running ffmpeg gets a
// SIGTERM and then a second one: ffmpeg interrupts a blocked read or write
// (a source that went silent, a stalled target) only on the second signal.
// The second signal also aborts the writing of trailers, so tasks that
// finish files (record segments, the last HLS playlist) get up to
// secondTermAfter to exit on the first one; others get 100 ms.
// supervisord's own TERM-then-KILL after stopwaitsecs remains the bound.
func (c *Concierge) removeProgram(ctx context.Context, name string, running bool) error {
	if running {
		grace := 100 * time.Millisecond
		if r := c.runs[name]; r != nil && (r.task.Type == "record" || r.task.Type == "hls") {
			grace = secondTermAfter
		}
		if err := c.drv.Signal(ctx, name, "TERM"); err == nil {
			deadline := time.Now().Add(grace)
			for {
				time.Sleep(50 * time.Millisecond)
				pi, err := c.drv.Client().ProcessInfo(ctx, name)
				if err != nil || !pi.State.Alive() {
					break
				}
				if time.Now().After(deadline) {
					_ = c.drv.Signal(ctx, name, "TERM")
					break
				}
			}
		}
	}
	return c.drv.Remove(ctx, name)
}

// secondTermAfter is how long a file-writing task's ffmpeg has after the
// first SIGTERM before the second one interrupts blocked I/O.
const secondTermAfter = time.Second

// taskStopWaitSecs: supervisord's TERM-to-KILL time for task programs,
// above secondTermAfter and below the default 5 s lease.
const taskStopWaitSecs = 3

// stopAll stops and removes every task program (shutdown).
func (c *Concierge) stopAll() {
	c.reconMu.Lock()
	defer c.reconMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	progs, err := c.drv.List(ctx)
	if err != nil {
		return
	}
	for name := range progs {
		if strings.HasPrefix(name, progPrefix) {
			if err := c.removeProgram(ctx, name, progs[name].State.Alive()); err != nil {
				c.log.Warn("stop at shutdown", "program", name, "err", err)
			}
		}
	}
	// The files the stopped recorders closed last: reported now if the
	// control plane still answers, else at the next start.
	c.scanRecordings(nil)
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	defer fcancel()
	c.flushRecordings(fctx)
	c.scanRecordings(nil) // deletes the lists that are done
}
