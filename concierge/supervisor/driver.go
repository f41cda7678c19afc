package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Driver manages programs of one supervisord through files in its include
// directory (one NAME.conf per program) plus XML-RPC. Concurrency: a mutex
// serialises config changes (file writes + reloadConfig); it is held across
// the RPC calls of one change on purpose, so two changes never interleave.
type Driver struct {
	c          *Client
	includeDir string

	mu sync.Mutex
}

// NewDriver returns a driver writing program files into includeDir, which
// the supervisord config must include (`[include] files=DIR/*.conf`).
func NewDriver(c *Client, includeDir string) *Driver {
	return &Driver{c: c, includeDir: includeDir}
}

// Client is the underlying XML-RPC client.
func (d *Driver) Client() *Client { return d.c }

func (d *Driver) file(name string) string { return filepath.Join(d.includeDir, name+".conf") }

// Add writes p's section and makes supervisord load it (not started: see Start).
// Adding a program that is already loaded with the same section is a no-op.
func (d *Driver) Add(ctx context.Context, p Program) error {
	f, err := d.c.Flavor(ctx)
	if err != nil {
		return err
	}
	section, err := p.Render(f)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	path := d.file(p.Name)
	if old, err := os.ReadFile(path); err == nil && string(old) == section {
		if _, err := d.c.ProcessInfo(ctx, p.Name); err == nil {
			return nil
		}
	}
	if err := os.MkdirAll(d.includeDir, 0o700); err != nil {
		return fmt.Errorf("include dir: %w", err)
	}
	// The section holds the task's command line, keys included: 0600.
	tmp := path + ".tmp"
	if err := WritePrivate(tmp, []byte(section)); err != nil {
		return fmt.Errorf("write program %s: %w", p.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write program %s: %w", p.Name, err)
	}
	return d.apply(ctx, f, p.Name, "")
}

// Remove stops p (TERM, then KILL after stopwaitsecs), deletes its section
// and unloads it. Removing an unknown program is a no-op.
func (d *Driver) Remove(ctx context.Context, name string) error {
	f, err := d.c.Flavor(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.c.StopProcess(ctx, name, true); err != nil && !isNotRunning(err) && !isBadName(err) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if err := os.Remove(d.file(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove program %s: %w", name, err)
	}
	return d.apply(ctx, f, "", name)
}

// apply rereads the config; on Python supervisor it then adds new groups and
// removes dropped ones (ochinchina applies the reread by itself). Only this
// driver's groups are touched (a file in the include dir, or the one just
// removed), so programs of a shared supervisord that the operator edits are
// left to the operator.
func (d *Driver) apply(ctx context.Context, f Flavor, want, gone string) error {
	added, changed, removed, err := d.c.ReloadConfig(ctx)
	if err != nil {
		return fmt.Errorf("reloadConfig: %w", err)
	}
	if f != FlavorPython {
		return nil
	}
	mine := func(gs []string) []string {
		var out []string
		for _, g := range gs {
			if _, err := os.Stat(d.file(g)); err == nil || g == gone {
				out = append(out, g)
			}
		}
		return out
	}
	added, changed, removed = mine(added), mine(changed), mine(removed)
	for _, g := range removed {
		if err := d.c.StopProcess(ctx, g, true); err != nil && !isNotRunning(err) && !isBadName(err) {
			return fmt.Errorf("stop removed %s: %w", g, err)
		}
		if err := d.c.RemoveProcessGroup(ctx, g); err != nil && !isBadName(err) {
			return fmt.Errorf("removeProcessGroup %s: %w", g, err)
		}
	}
	for _, g := range changed { // replace: a changed section takes effect on re-add
		if err := d.c.StopProcess(ctx, g, true); err != nil && !isNotRunning(err) && !isBadName(err) {
			return fmt.Errorf("stop changed %s: %w", g, err)
		}
		if err := d.c.RemoveProcessGroup(ctx, g); err != nil && !isBadName(err) {
			return fmt.Errorf("removeProcessGroup %s: %w", g, err)
		}
		added = append(added, g)
	}
	for _, g := range added {
		if err := d.c.AddProcessGroup(ctx, g); err != nil && !IsFault(err, FaultAlreadyAdded) {
			return fmt.Errorf("addProcessGroup %s: %w", g, err)
		}
	}
	if want != "" {
		if _, err := d.c.ProcessInfo(ctx, want); err != nil {
			return fmt.Errorf("program %s not loaded after reloadConfig: %w", want, err)
		}
	}
	return nil
}

// Start starts a loaded program without waiting for it to be RUNNING;
// starting a running program is a no-op.
func (d *Driver) Start(ctx context.Context, name string) error {
	err := d.c.StartProcess(ctx, name, false)
	if err != nil && !IsFault(err, FaultAlreadyStarted) {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

// Stop stops a program and waits until it has exited.
func (d *Driver) Stop(ctx context.Context, name string) error {
	err := d.c.StopProcess(ctx, name, true)
	if err != nil && !isNotRunning(err) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// Signal sends a signal to a running program; a program that is not
// running is not an error.
func (d *Driver) Signal(ctx context.Context, name, signal string) error {
	err := d.c.SignalProcess(ctx, name, signal)
	if err != nil && !isNotRunning(err) && !isBadName(err) {
		return fmt.Errorf("signal %s %s: %w", signal, name, err)
	}
	return nil
}

// List returns every loaded program with its info, by name.
func (d *Driver) List(ctx context.Context) (map[string]ProcessInfo, error) {
	all, err := d.c.AllProcessInfo(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ProcessInfo, len(all))
	for _, p := range all {
		out[p.Name] = p
	}
	return out, nil
}

// Files lists the program names that have a section in the include dir.
func (d *Driver) Files() ([]string, error) {
	ents, err := os.ReadDir(d.includeDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".conf"); ok && !e.IsDir() {
			out = append(out, n)
		}
	}
	return out, nil
}

// Tail returns the last n bytes of a program's log (stdout with stderr).
func (d *Driver) Tail(ctx context.Context, name string, n int) (string, error) {
	return d.c.TailStdout(ctx, name, n)
}

// isNotRunning: Python answers NOT_RUNNING; ochinchina stops silently.
func isNotRunning(err error) bool { return IsFault(err, FaultNotRunning) }

// isBadName: an unknown program (Python BAD_NAME; ochinchina a generic fault
// whose message names the missing process).
func isBadName(err error) bool {
	if IsFault(err, FaultBadName) {
		return true
	}
	var f *Fault
	return errors.As(err, &f) && (strings.Contains(f.Message, "fail to find process") || strings.Contains(f.Message, "no process named") || strings.Contains(strings.ToLower(f.Message), "no such process"))
}
