package deploy

import (
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImage builds deploy/Dockerfile's default target (FROM scratch) with
// podman from a static portier binary (BINARIES=prebuilt: no registry image
// is pulled) and runs `portier -h` and `portier serve -h` in it as its
// non-root user. It runs under CI=true (or PORTIER_TEST_IMAGE=1), where
// podman is required; it takes seconds once the binary exists.
func TestImage(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("PORTIER_TEST_IMAGE") != "1" {
		t.Skip("builds a container image: runs under CI=true or PORTIER_TEST_IMAGE=1")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman is required (Debian packages podman and runc; make deps-test installs them): %v", err)
	}
	ctx := t.TempDir()
	if err := os.Mkdir(filepath.Join(ctx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	staticBinary(t, filepath.Join(ctx, "bin", "portier"))
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctx, "bin", "ca-certificates.crt"))
	copyFile(t, "Dockerfile", filepath.Join(ctx, "Dockerfile"))

	suffix := make([]byte, 4)
	rand.Read(suffix)
	image := "localhost/portier-deploy-test:" + hex.EncodeToString(suffix)
	run := func(args ...string) (string, error) {
		start := time.Now()
		out, err := exec.Command(podman, args...).CombinedOutput()
		t.Logf("podman %s: %v", args[0], time.Since(start).Round(time.Millisecond))
		return string(out), err
	}
	if out, err := run("build", "--squash-all", "--build-arg", "BINARIES=prebuilt", "-f", filepath.Join(ctx, "Dockerfile"), "-t", image, ctx); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run("rmi", "--force", image) })
	if out, err := run("image", "inspect", "--format", "{{.Config.User}}", image); err != nil || strings.TrimSpace(out) != "65532:65532" {
		t.Errorf("image user %q (%v), want 65532:65532", strings.TrimSpace(out), err)
	}
	// runc where installed: crun refuses hosts with hybrid cgroups. Low
	// ulimits: a sandboxed host may refuse raising them.
	runArgs := []string{"run", "--rm", "--network=none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	if _, err := exec.LookPath("runc"); err == nil {
		runArgs = append([]string{"--runtime", "runc"}, runArgs...)
	}
	// --version runs the binary in the image; -h lists the roles and
	// serve -h the flags.
	out, err := run(append(runArgs, image, "--version")...)
	if err != nil || !strings.HasPrefix(out, "portier ") {
		t.Errorf("portier --version in the image: %v\n%s", err, out)
	}
	out, _ = run(append(runArgs, image)...)
	if !strings.Contains(out, "cdn-edge") || !strings.Contains(out, "usage: portier") {
		t.Errorf("portier -h in the image:\n%s", out)
	}
	out, err = run(append(runArgs, image, "serve", "-h")...)
	if err != nil || !strings.Contains(out, "Usage of serve") {
		t.Errorf("portier serve -h in the image: %v\n%s", err, out)
	}
}

// staticBinary puts a statically linked portier at dst: the one on PATH if
// it is static, else one built with CGO_ENABLED=0 (an image FROM scratch has
// no dynamic loader).
func staticBinary(t *testing.T, dst string) {
	t.Helper()
	if p := portierPath(t); isStatic(p) {
		copyFile(t, p, dst)
		return
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", dst, "github.com/portier/portier/cmd/portier")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a static portier: %v\n%s", err, out)
	}
}

// isStatic reports whether the ELF file at path has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
