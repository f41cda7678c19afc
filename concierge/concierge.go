// Package concierge is the worker daemon: it registers with the control
// plane, receives the tasks assigned to it (long poll), keeps them running
// under supervisord (one program per task and epoch), reports every state
// change, backs failing tasks off exponentially, fences itself when cut off
// from the control plane, and drains on shutdown.
package concierge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portier/portier/concierge/supervisor"
	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/dirlock"
	"github.com/portier/portier/internal/hoststats"
	"github.com/portier/portier/media/httpserve"
)

// Params configures a concierge.
type Params struct {
	// Control is the control plane's base URL, or several replicas' separated
	// by commas (calls fail over between them); ClusterToken authenticates.
	Control      string
	ClusterToken string
	// Name is the node name (default: the host name).
	Name string
	// Capacity is the task-cost budget in CPU cores (default: the number
	// of CPUs); tasks cost hundredths of a core (internal/taskcost).
	Capacity int
	Labels   map[string]string
	// RelayRTMP is the relay this host's tasks use, host:port or a base URL:
	// their relay arguments (the stream they read, the stream a pull
	// publishes) are rebased onto it (wire.Description.Rebase); empty keeps
	// the control plane's relay. Announced as the node's rtmp_address, and
	// given to tasks as PORTIER_RELAY_RTMP.
	RelayRTMP string
	// SupervisorURL drives an existing supervisord (http://… or unix://…),
	// writing program sections into SupervisorIncludeDir. Empty starts an
	// embedded supervisord (SupervisorBinary, default FindBinary) in DataDir.
	SupervisorURL        string
	SupervisorIncludeDir string
	SupervisorBinary     string
	// DataDir holds the embedded supervisord and task logs (default ./concierge-data).
	DataDir string
	// FFmpeg is the ffmpeg the concierge requires at start (default: on PATH).
	FFmpeg string
	// DrainTimeout bounds how long shutdown waits for tasks to run elsewhere (default 20s).
	DrainTimeout time.Duration
	// NoHandoff stops the tasks at shutdown without handing them to other
	// concierges first: for a concierge alone in its cluster (portier run),
	// where nobody could take them over and the handoff would only hold
	// shutdown for DrainTimeout. The scheduler places them again when the
	// concierge is back.
	NoHandoff bool
	// BackoffMin and BackoffMax bound the restart delay of failing tasks (default 1s, 60s).
	BackoffMin, BackoffMax time.Duration
	// HTTPAddr serves /healthz, /readyz and /metrics ("" for none).
	HTTPAddr string
	// HTTPTimeouts bound slow and idle clients of HTTPAddr (zero fields:
	// httpserve.DefaultTimeouts).
	HTTPTimeouts httpserve.Timeouts
	// Version is reported at registration.
	Version    string
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Concierge is one worker daemon. Its task table (runs) is owned by the
// reconcile goroutine; the assignment is handed over under mu.
type Concierge struct {
	p    Params
	log  *slog.Logger
	ctl  *control
	ffmp string

	emb *supervisor.Embedded
	drv *supervisor.Driver
	m   *metrics
	// host samples the host's figures for heartbeats.
	host *hoststats.Sampler

	httpAddr atomic.Value // net.Addr once serving

	mu       sync.Mutex
	assign   wire.Assignment
	haveAsg  bool
	draining bool

	poke     chan struct{}
	lastHBOK atomic.Int64 // unix nanos of the last successful heartbeat
	hbEvery  atomic.Int64 // nanoseconds
	lease    atomic.Int64 // nanoseconds
	// progressEvery is how often running tasks report progress
	// (nanoseconds; 0: the control plane asks for none).
	progressEvery atomic.Int64
	costUsed      atomic.Int64 // taskcost units
	nRunning      atomic.Int64
	runs          map[string]*run // by program name; reconcile goroutine only
	queue         []pendingReport // reports of the current reconcile pass
	reconMu       sync.Mutex      // one reconcile at a time (loop and drain)
	fencedLog     bool
	// lists are the segment lists being read and recs the closed record
	// files waiting for the control plane (see recordings.go);
	// recsFailing: the last report of them failed. Reconcile goroutine only.
	lists       map[string]*segList
	recs        []pendingRecording
	recsFailing bool
	// svRestarted is set when the embedded supervisord was restarted.
	svRestarted atomic.Bool
}

// New validates p and checks that ffmpeg is installed.
func New(p Params) (*Concierge, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, errors.New("no --name and no host name: pass --name")
		}
		p.Name = h
	}
	if p.Capacity <= 0 {
		p.Capacity = runtime.NumCPU()
	}
	if p.DataDir == "" {
		p.DataDir = "concierge-data"
	}
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = 20 * time.Second
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = time.Second
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = time.Minute
	}
	if p.SupervisorURL != "" && p.SupervisorIncludeDir == "" {
		return nil, errors.New("--supervisor-url needs --supervisor-include-dir: the directory that supervisord's [include] section reads, where the concierge writes one program file per task")
	}
	ff := p.FFmpeg
	if ff == "" {
		ff = "ffmpeg"
	}
	path, err := exec.LookPath(ff)
	if err != nil {
		return nil, fmt.Errorf("ffmpeg not found (%s): the concierge runs every task with ffmpeg; install it (Debian: apt-get install ffmpeg) or pass --ffmpeg PATH", ff)
	}
	log := p.Logger.With("component", "concierge", "node", p.Name)
	ctl, err := newControl(p.Control, p.ClusterToken, p.HTTPClient, log)
	if err != nil {
		return nil, err
	}
	c := &Concierge{p: p, ctl: ctl, ffmp: path, poke: make(chan struct{}, 1), runs: map[string]*run{}, lists: map[string]*segList{}}
	c.log = log
	c.m = newMetrics(c)
	c.host = hoststats.New(p.Version)
	c.hbEvery.Store(int64(time.Second))
	c.lease.Store(int64(5 * time.Second))
	return c, nil
}

// HTTPAddr is the address of the health and metrics server (nil before Run
// starts it or when Params.HTTPAddr is empty).
func (c *Concierge) HTTPAddr() net.Addr {
	a, _ := c.httpAddr.Load().(net.Addr)
	return a
}

// Name is the concierge's node name.
func (c *Concierge) Name() string { return c.p.Name }

// Capacity is the CPU cores the concierge registers as its task-cost
// budget (Params.Capacity, or the number of CPUs).
func (c *Concierge) Capacity() int { return c.p.Capacity }

func (c *Concierge) wake() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Run starts (or connects to) supervisord, registers and works until ctx
// ends; then it drains: hands its tasks back, waits (bounded) until they run
// elsewhere, stops its processes and returns.
func (c *Concierge) Run(ctx context.Context) error {
	// The data dir holds the embedded supervisord, its program files (task
	// command lines with their keys) and the task logs: private, and one
	// concierge's alone (two would share one supervisord).
	if err := supervisor.PrivateDir(c.p.DataDir); err != nil {
		return fmt.Errorf("--data-dir %s: %w", c.p.DataDir, err)
	}
	release, err := dirlock.Lock(c.p.DataDir, "concierge")
	if err != nil {
		return err
	}
	defer release()
	// Its keep-alive connections to the control plane end with it.
	defer c.ctl.http.CloseIdleConnections()
	// Listen before supervisord starts, so that a taken --http-addr stops
	// the concierge before it has anything to clean up.
	var ln net.Listener
	if c.p.HTTPAddr != "" {
		if ln, err = net.Listen("tcp", c.p.HTTPAddr); err != nil {
			return fmt.Errorf("--http-addr %s: %w", c.p.HTTPAddr, err)
		}
	}
	if err := c.startSupervisor(ctx); err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	defer c.closeSupervisor()
	if ln != nil {
		hctx, stopHTTP := context.WithCancel(context.Background())
		defer stopHTTP()
		c.httpAddr.Store(c.serveHTTP(hctx, ln))
	}
	if err := c.registerLoop(ctx); err != nil {
		if errors.Is(err, ErrNameTaken) {
			return err // another live node holds the name: exit non-zero
		}
		return nil // cancelled before registering: nothing to hand back
	}
	c.m.registered.Store(true)
	c.lastHBOK.Store(time.Now().UnixNano())
	c.log.Info("concierge registered", "control", c.ctl.current(), "capacity", c.p.Capacity, "ffmpeg", c.ffmp)

	work, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.heartbeatLoop(work) }()
	go func() { defer wg.Done(); c.assignmentLoop(work) }()
	go func() { defer wg.Done(); c.reconcileLoop(work) }()

	<-ctx.Done()
	c.drain()
	stopWork()
	wg.Wait()
	c.stopAll()
	c.log.Info("concierge stopped")
	return nil
}

func (c *Concierge) startSupervisor(ctx context.Context) error {
	if c.p.SupervisorURL != "" {
		cl, err := supervisor.Dial(c.p.SupervisorURL)
		if err != nil {
			return err
		}
		f, err := cl.Flavor(ctx)
		if err != nil {
			return fmt.Errorf("supervisord at %s does not answer: %w", c.p.SupervisorURL, err)
		}
		c.log.Info("driving an existing supervisord", "url", c.p.SupervisorURL, "flavor", f)
		c.drv = supervisor.NewDriver(cl, c.p.SupervisorIncludeDir)
		return nil
	}
	emb, err := supervisor.StartEmbedded(ctx, supervisor.EmbeddedParams{
		Binary: c.p.SupervisorBinary, Dir: filepath.Join(c.p.DataDir, "supervisord"),
		OnRestart: func() { c.svRestarted.Store(true); c.wake() }, Logger: c.p.Logger,
	})
	if err != nil {
		return fmt.Errorf("embedded supervisord: %w", err)
	}
	cl, err := supervisor.Dial(emb.URL())
	if err != nil {
		emb.Close(5 * time.Second)
		return err
	}
	c.emb = emb
	c.drv = supervisor.NewDriver(cl, emb.IncludeDir())
	return nil
}

func (c *Concierge) closeSupervisor() {
	if c.emb != nil {
		_ = c.emb.Close(15 * time.Second)
	}
}

// SupervisorPID is the embedded supervisord's pid (0 when driving an external one).
func (c *Concierge) SupervisorPID() int {
	if c.emb == nil {
		return 0
	}
	return c.emb.PID()
}

// ErrNameTaken (from Run): the control plane refused the registration
// because another live node (another role or address) holds the
// concierge's name. The error's text names the clash and the fix.
var ErrNameTaken = errors.New("node name taken")

func (c *Concierge) register(ctx context.Context) error {
	labels := c.p.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	// The host name and the health address tell the control plane a
	// restart of this concierge from another one that claims its name.
	host, _ := os.Hostname()
	httpAddr := ""
	if a, ok := c.httpAddr.Load().(net.Addr); ok {
		httpAddr = a.String()
	}
	rep, err := c.ctl.register(ctx, registerReq{Name: c.p.Name, Role: "concierge", RTMPAddress: c.p.RelayRTMP,
		HTTPAddress: httpAddr, Host: host, Capacity: c.p.Capacity, Labels: labels, Version: c.p.Version})
	if err != nil {
		return err
	}
	if rep.HeartbeatIntervalMS > 0 {
		c.hbEvery.Store(int64(time.Duration(rep.HeartbeatIntervalMS) * time.Millisecond))
	}
	if rep.LeaseMS > 0 {
		c.lease.Store(int64(time.Duration(rep.LeaseMS) * time.Millisecond))
	}
	return nil
}

func (c *Concierge) registerLoop(ctx context.Context) error {
	delay := 200 * time.Millisecond
	for {
		err := c.register(ctx)
		if err == nil {
			return nil
		}
		if isStatus(err, http.StatusConflict) {
			// Final: another live node (another role or address) holds
			// the name. Its message names the clash and the fix.
			var ae *apiError
			errors.As(err, &ae)
			c.log.Error("registration refused: node name taken", "err", ae.Message)
			return fmt.Errorf("%w: %s", ErrNameTaken, ae.Message)
		}
		c.log.Warn("register failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (c *Concierge) heartbeatLoop(ctx context.Context) {
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.ctl.heartbeat(hctx, c.p.Name, c.heartbeatBody())
		cancel()
		switch {
		case err == nil:
			c.lastHBOK.Store(time.Now().UnixNano())
		case isStatus(err, http.StatusNotFound):
			c.log.Warn("control plane does not know this concierge; registering again")
			if err := c.register(ctx); err == nil {
				c.lastHBOK.Store(time.Now().UnixNano())
			}
		case ctx.Err() == nil:
			c.log.Warn("heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(c.hbEvery.Load())):
		}
	}
}

func (c *Concierge) assignmentLoop(ctx context.Context) {
	after := ""
	for ctx.Err() == nil {
		a, err := c.ctl.assignments(ctx, c.p.Name, after, 25*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if isCode(err, wire.CodeUnknownNode) {
				_ = c.register(ctx)
			} else {
				c.log.Warn("assignment poll failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if a.LeaseMS > 0 {
			c.lease.Store(int64(time.Duration(a.LeaseMS) * time.Millisecond))
		}
		c.progressEvery.Store(int64(progressPeriod(a.ProgressMS)))
		if a.Version != after || !c.hasAssignment() {
			c.mu.Lock()
			c.assign, c.haveAsg = a, true
			c.mu.Unlock()
			after = a.Version
			c.wake()
		}
	}
}

func (c *Concierge) hasAssignment() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveAsg
}

// cutOff reports whether the control plane has not confirmed a heartbeat for
// most of a lease: the tasks are about to be (or were) given to another
// concierge, so this one must stop them to keep one runner per task.
func (c *Concierge) cutOff() bool {
	lease := time.Duration(c.lease.Load())
	return time.Since(time.Unix(0, c.lastHBOK.Load())) > lease*4/5
}

func (c *Concierge) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		c.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.poke:
		case <-t.C:
		}
	}
}

// drain hands the tasks back and waits (bounded) for them to run elsewhere.
func (c *Concierge) drain() {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	if c.p.NoHandoff {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.p.DrainTimeout)
	defer cancel()
	ids, err := c.ctl.drain(ctx, c.p.Name)
	if err != nil {
		c.log.Warn("drain: control plane unreachable; stopping tasks without handoff", "err", err)
		return
	}
	c.log.Info("draining: tasks handed back", "tasks", len(ids))
	t0 := time.Now()
	for len(ids) > 0 {
		waiting, err := c.ctl.handoff(ctx, c.p.Name, ids)
		if err == nil && len(waiting) == 0 {
			c.log.Info("drain: every task runs elsewhere", "took", time.Since(t0).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			c.log.Warn("drain: tasks not running elsewhere before the drain timeout", "waiting", len(waiting), "timeout", c.p.DrainTimeout)
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}
