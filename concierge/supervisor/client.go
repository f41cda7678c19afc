package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Flavor is the supervisord implementation behind an XML-RPC endpoint.
type Flavor int

const (
	// FlavorUnknown has not been detected yet.
	FlavorUnknown Flavor = iota
	// FlavorPython is Python supervisor: addProcessGroup/removeProcessGroup
	// work, reloadConfig only rereads, `%` in values must be doubled.
	FlavorPython
	// FlavorOchinchina is ochinchina/supervisord: reloadConfig applies the
	// config at once (adds and stops programs), the group calls are stubs,
	// `%` is literal unless followed by `(`.
	FlavorOchinchina
)

func (f Flavor) String() string {
	switch f {
	case FlavorPython:
		return "python-supervisor"
	case FlavorOchinchina:
		return "ochinchina-supervisord"
	}
	return "unknown"
}

// State is a supervisord process state; codes are the same in both flavors.
type State int

// Process states.
const (
	StateStopped  State = 0
	StateStarting State = 10
	StateRunning  State = 20
	StateBackoff  State = 30
	StateStopping State = 40
	StateExited   State = 100
	StateFatal    State = 200
	StateUnknown  State = 1000
)

func (s State) String() string {
	switch s {
	case StateStopped:
		return "STOPPED"
	case StateStarting:
		return "STARTING"
	case StateRunning:
		return "RUNNING"
	case StateBackoff:
		return "BACKOFF"
	case StateStopping:
		return "STOPPING"
	case StateExited:
		return "EXITED"
	case StateFatal:
		return "FATAL"
	}
	return "UNKNOWN"
}

// Alive reports whether a process in this state is (or is about to be) running.
func (s State) Alive() bool {
	return s == StateStarting || s == StateRunning || s == StateBackoff || s == StateStopping
}

// ProcessInfo is what supervisord reports about one process.
type ProcessInfo struct {
	Name, Group   string
	Description   string
	State         State
	Start, Stop   time.Time
	ExitStatus    int
	PID           int
	SpawnErr      string
	StdoutLogfile string
	StderrLogfile string
}

func processInfoFrom(v any) (ProcessInfo, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return ProcessInfo{}, fmt.Errorf("process info: expected a struct, got %T", v)
	}
	pi := ProcessInfo{
		Name:          asString(m["name"]),
		Group:         asString(m["group"]),
		Description:   asString(m["description"]),
		State:         State(asInt(m["state"])),
		ExitStatus:    asInt(m["exitstatus"]),
		PID:           asInt(m["pid"]),
		SpawnErr:      asString(m["spawnerr"]),
		StdoutLogfile: asString(m["stdout_logfile"]),
		StderrLogfile: asString(m["stderr_logfile"]),
	}
	if s := asInt(m["start"]); s > 0 {
		pi.Start = time.Unix(int64(s), 0)
	}
	if s := asInt(m["stop"]); s > 0 {
		pi.Stop = time.Unix(int64(s), 0)
	}
	return pi, nil
}

// ErrUnsupported is returned by calls the server does not implement
// (addProcessGroup/removeProcessGroup on ochinchina/supervisord).
var ErrUnsupported = errors.New("not supported by this supervisord")

// Client talks XML-RPC to one supervisord. It is safe for concurrent use.
type Client struct {
	rpc *rpcClient

	mu     sync.Mutex
	flavor Flavor
}

// Dial returns a client for url: http://127.0.0.1:9001[/RPC2] or
// unix:///path/supervisor.sock. It does not connect until the first call.
func Dial(url string) (*Client, error) {
	r, err := newRPCClient(url)
	if err != nil {
		return nil, err
	}
	return &Client{rpc: r}, nil
}

func (c *Client) call1(ctx context.Context, method string, args ...any) (any, error) {
	params, err := c.rpc.call(ctx, method, args...)
	if err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("%s: empty answer", method)
	}
	return params[0], nil
}

// Flavor detects (once) which supervisord answers: Python supervisor lists
// its methods with system.listMethods, ochinchina/supervisord has no such method.
func (c *Client) Flavor(ctx context.Context) (Flavor, error) {
	c.mu.Lock()
	f := c.flavor
	c.mu.Unlock()
	if f != FlavorUnknown {
		return f, nil
	}
	if _, err := c.GetState(ctx); err != nil {
		return FlavorUnknown, err
	}
	v, err := c.call1(ctx, "system.listMethods")
	f = FlavorOchinchina
	if err == nil {
		for _, m := range asStrings(v) {
			if m == "supervisor.addProcessGroup" {
				f = FlavorPython
			}
		}
	}
	c.mu.Lock()
	c.flavor = f
	c.mu.Unlock()
	return f, nil
}

// GetState returns supervisord's own state name (RUNNING when healthy).
func (c *Client) GetState(ctx context.Context) (string, error) {
	v, err := c.call1(ctx, "supervisor.getState")
	if err != nil {
		return "", err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("getState: unexpected answer %T", v)
	}
	return asString(m["statename"]), nil
}

// GetPID returns supervisord's process id.
func (c *Client) GetPID(ctx context.Context) (int, error) {
	v, err := c.call1(ctx, "supervisor.getPID")
	if err != nil {
		return 0, err
	}
	return asInt(v), nil
}

// AllProcessInfo lists every process supervisord knows.
func (c *Client) AllProcessInfo(ctx context.Context) ([]ProcessInfo, error) {
	v, err := c.call1(ctx, "supervisor.getAllProcessInfo")
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("getAllProcessInfo: unexpected answer %T", v)
	}
	out := make([]ProcessInfo, 0, len(arr))
	for _, e := range arr {
		pi, err := processInfoFrom(e)
		if err != nil {
			return nil, err
		}
		out = append(out, pi)
	}
	return out, nil
}

// ProcessInfo returns one process's info.
func (c *Client) ProcessInfo(ctx context.Context, name string) (ProcessInfo, error) {
	v, err := c.call1(ctx, "supervisor.getProcessInfo", name)
	if err != nil {
		return ProcessInfo{}, err
	}
	return processInfoFrom(v)
}

// StartProcess starts a program; with wait it returns once it is RUNNING
// (Python answers a fault if it dies before startsecs).
func (c *Client) StartProcess(ctx context.Context, name string, wait bool) error {
	_, err := c.call1(ctx, "supervisor.startProcess", name, wait)
	return err
}

// StopProcess stops a program (stopsignal, then SIGKILL after stopwaitsecs).
func (c *Client) StopProcess(ctx context.Context, name string, wait bool) error {
	_, err := c.call1(ctx, "supervisor.stopProcess", name, wait)
	return err
}

// SignalProcess sends a signal ("TERM", "INT", "HUP"…) to a running program.
func (c *Client) SignalProcess(ctx context.Context, name, signal string) error {
	_, err := c.call1(ctx, "supervisor.signalProcess", name, signal)
	return err
}

// ReloadConfig rereads the configuration. Python supervisor only computes the
// difference (apply it with AddProcessGroup/RemoveProcessGroup); ochinchina
// also applies it (creates new programs, stops and drops removed ones).
func (c *Client) ReloadConfig(ctx context.Context) (added, changed, removed []string, err error) {
	params, err := c.rpc.call(ctx, "supervisor.reloadConfig")
	if err != nil {
		return nil, nil, nil, err
	}
	// Python: [[added, changed, removed]]; ochinchina: three params.
	if len(params) == 1 {
		if outer, ok := params[0].([]any); ok && len(outer) == 1 {
			if inner, ok := outer[0].([]any); ok {
				params = inner
			}
		}
	}
	if len(params) != 3 {
		return nil, nil, nil, fmt.Errorf("reloadConfig: unexpected answer with %d values", len(params))
	}
	return asStrings(params[0]), asStrings(params[1]), asStrings(params[2]), nil
}

// AddProcessGroup activates a group that ReloadConfig found in the config.
// ErrUnsupported on ochinchina/supervisord, whose call is a stub answering false.
func (c *Client) AddProcessGroup(ctx context.Context, name string) error {
	v, err := c.call1(ctx, "supervisor.addProcessGroup", name)
	if err != nil {
		return err
	}
	if !asBool(v) {
		return fmt.Errorf("addProcessGroup %s: %w", name, ErrUnsupported)
	}
	return nil
}

// RemoveProcessGroup drops a stopped group. ErrUnsupported on ochinchina.
func (c *Client) RemoveProcessGroup(ctx context.Context, name string) error {
	v, err := c.call1(ctx, "supervisor.removeProcessGroup", name)
	if err != nil {
		return err
	}
	if !asBool(v) {
		return fmt.Errorf("removeProcessGroup %s: %w", name, ErrUnsupported)
	}
	return nil
}

// TailStdout returns up to n of the last bytes of a program's stdout log
// (which holds stderr too with redirect_stderr).
func (c *Client) TailStdout(ctx context.Context, name string, n int) (string, error) {
	params, err := c.rpc.call(ctx, "supervisor.tailProcessStdoutLog", name, 0, n)
	if err != nil {
		return "", err
	}
	// Python: [[bytes, offset, overflow]]; ochinchina: three params.
	if len(params) == 1 {
		if arr, ok := params[0].([]any); ok {
			params = arr
		}
	}
	if len(params) == 0 {
		return "", fmt.Errorf("tailProcessStdoutLog: empty answer")
	}
	return asString(params[0]), nil
}

// ReadStderr reads a program's stderr log (Python semantics: a negative
// offset with length 0 reads the last -offset bytes).
func (c *Client) ReadStderr(ctx context.Context, name string, offset, length int) (string, error) {
	v, err := c.call1(ctx, "supervisor.readProcessStderrLog", name, offset, length)
	if err != nil {
		return "", err
	}
	return asString(v), nil
}
