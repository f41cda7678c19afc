// Package dirlock makes a data directory belong to one process at a time:
// an exclusive flock on a lock file inside it, which records the holder's
// PID so that a second process can say who holds it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FileName is the lock file inside a locked directory.
const FileName = ".lock"

// ErrHeld is wrapped by the error of Lock when another process holds the lock.
var ErrHeld = errors.New("data directory in use")

// Lock takes the lock of dir (which must exist) for this process, without
// waiting. what names the program in the error ("concierge", "portier run").
// The kernel drops the lock when the process dies, so a crash leaves no
// stale lock. release drops it.
func Lock(dir, what string) (release func(), err error) {
	path := filepath.Join(dir, FileName)
	release, holder, err := LockFile(path)
	if errors.Is(err, ErrHeld) {
		abs, _ := filepath.Abs(dir)
		return nil, fmt.Errorf("%w: %s is used by another %s (%s holds %s): give this one another --data-dir, or stop the other one",
			ErrHeld, abs, what, holder, path)
	}
	return release, err
}

// LockFile takes an exclusive flock on the file at path (created 0600) and
// writes this process's PID into it, without waiting. If another process
// holds it, err wraps ErrHeld and holder names it ("process 1234", or
// "another process" when the file does not say).
func LockFile(path string) (release func(), holder string, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			return nil, holder, fmt.Errorf("%w: %s holds %s", ErrHeld, holder, path)
		}
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, "", nil
}
