package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersityGWVersion is the versitygw release the S3 tests run against.
const VersityGWVersion = "v1.8.0"

// VersityGW is a running versitygw: a real S3 server on a posix directory.
type VersityGW struct {
	*Proc
	Addr      string // 127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string // the posix root: one directory per bucket
}

// Endpoint is the gateway's S3 endpoint URL.
func (g *VersityGW) Endpoint() string { return "http://" + g.Addr }

// CreateBucket makes a bucket through the S3 API.
func (g *VersityGW) CreateBucket(t testing.TB, name string) {
	t.Helper()
	c, err := minio.New(g.Addr, &minio.Options{Creds: credentials.NewStaticV4(g.AccessKey, g.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// StartVersityGW starts versitygw's posix backend on a free loopback port
// with a fresh root directory and waits until it accepts connections. When
// the binary cannot be built, the test is skipped with the reason, except
// under CI=true, where it fails.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	bin, err := versityGWBinary(t)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("versitygw %s: %v", VersityGWVersion, err)
		}
		t.Skipf("versitygw %s cannot be built here (%v); the S3 test needs it (under CI=true this fails)", VersityGWVersion, err)
	}
	g := &VersityGW{Addr: FreeAddr(t), AccessKey: "portier-test-access", SecretKey: "portier-test-secret-key", Dir: t.TempDir()}
	cmd := exec.Command(bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--port", g.Addr, "--quiet", "posix", g.Dir)
	p, err := startProc(t, "versitygw", cmd, false)
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	g.Proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WaitTCP(ctx, g.Addr, p); err != nil {
		t.Fatalf("versitygw did not listen on %s: %v\n%s", g.Addr, err, p.Stderr())
	}
	return g
}

// versityGWBinary builds versitygw once per machine into the user cache
// directory (portier-peers/versitygw-VERSION), like MediaMTXBinary: the
// module source from the Go module proxy, then `go build ./cmd/versitygw`.
func versityGWBinary(t testing.TB) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("no go tool to build it: %w", err)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "portier-peers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw-"+VersityGWVersion)
	if isExecutable(bin) {
		return bin, nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) {
		return bin, nil
	}
	start := time.Now()
	t.Logf("building versitygw %s into %s (once per machine)", VersityGWVersion, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := buildVersityGW(ctx, dir, bin); err != nil {
		return "", err
	}
	t.Logf("built versitygw in %s", time.Since(start).Round(time.Second))
	return bin, nil
}

func buildVersityGW(ctx context.Context, cacheDir, bin string) error {
	scratch, err := os.MkdirTemp(cacheDir, "build-versitygw-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/versity/versitygw@"+VersityGWVersion)
	dl.Dir, dl.Env = scratch, env
	out, err := dl.Output()
	if err != nil {
		return fmt.Errorf("go mod download: %w: %s", err, exitStderr(err))
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return fmt.Errorf("go mod download: unexpected output %q (%v) %s", out, err, info.Error)
	}
	src := filepath.Join(scratch, "src")
	if err := copyTree(info.Dir, src); err != nil {
		return fmt.Errorf("copy module source: %w", err)
	}
	tmpBin := filepath.Join(scratch, "versitygw")
	build := exec.CommandContext(ctx, "go", "build", "-o", tmpBin, "./cmd/versitygw")
	build.Dir, build.Env = src, env
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, lastLines(string(out), 10))
	}
	return os.Rename(tmpBin, bin)
}
