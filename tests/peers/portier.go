package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var portierBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// PortierBinary builds cmd/portier from the working tree once per test
// process (never a stale bin/portier) and returns its path. Tests that run
// portier as a separate process use it: a process kill is the only honest
// node failure. A package that calls it removes the build with
// RemovePortierBinary from its TestMain.
func PortierBinary(tb testing.TB) string {
	tb.Helper()
	b := &portierBin
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "portier-test-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "portier")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", b.path, "github.com/portier/portier/cmd/portier").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build ./cmd/portier: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		tb.Fatalf("build portier: %v", b.err)
	}
	return b.path
}

// RemovePortierBinary deletes what PortierBinary built (call it after m.Run).
func RemovePortierBinary() {
	if portierBin.dir != "" {
		os.RemoveAll(portierBin.dir)
	}
}
