// Package supervisortest provides real supervisord binaries to tests:
// ochinchina/supervisord built from the module's go.mod tool pin, and
// Debian's Python supervisord.
package supervisortest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Ochinchina returns the path of an ochinchina/supervisord binary, built
// once per machine into the user cache dir (the Go build cache makes later
// builds fast) or taken from $PORTIER_TEST_OCHINCHINA.
func Ochinchina(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PORTIER_TEST_OCHINCHINA"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "portier-test")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "supervisord-ochinchina")
		_, self, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(self), "..", "..", "..")
		tmp := buildPath + ".tmp" + filepath.Base(os.Args[0])
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/ochinchina/supervisord")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
		if buildErr == nil {
			buildErr = os.Rename(tmp, buildPath)
		}
	})
	if buildErr != nil {
		t.Fatalf("build ochinchina/supervisord: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// Python returns Debian's Python supervisord (package `supervisor`).
func Python(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/supervisord", "/usr/local/bin/supervisord"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("Python supervisord not installed: apt-get install supervisor (make deps-test)")
	return ""
}
