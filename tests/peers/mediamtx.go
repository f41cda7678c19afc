package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MediaMTXVersion is a MediaMTX release tag that MediaMTXBinary can build.
type MediaMTXVersion string

// The two MediaMTX releases the tests know. The issues name v1.15.3: it
// builds here from the module proxy (go mod download works for it) and is
// the default. LIBRARIES.md reports that v1.15.3 drops RTMP players a few
// seconds after play on H.264 with B-frames (its issues #5226/#5209); with
// ffmpeg 5.1 publishers here (PublishOpts.BFrames, RTMP and RTSP publish,
// RTMP play by ffmpeg and by tests/bench's load client, 10 s) it did not
// happen. v1.14.0, the older known-good pin, builds too: select it with
// MediaMTXOpts.Version or PORTIER_MEDIAMTX_VERSION=v1.14.0.
const (
	MediaMTX1153 MediaMTXVersion = "v1.15.3"
	MediaMTX1140 MediaMTXVersion = "v1.14.0"
)

// DefaultMediaMTXVersion is used when MediaMTXOpts.Version is empty and
// PORTIER_MEDIAMTX_VERSION is unset.
const DefaultMediaMTXVersion = MediaMTX1153

// MediaMTXOpts configures MediaMTX.
type MediaMTXOpts struct {
	// Version defaults to $PORTIER_MEDIAMTX_VERSION, then
	// DefaultMediaMTXVersion.
	Version MediaMTXVersion
	// AuthHTTPAddress sets `authMethod: http` with this URL. Empty means
	// internal auth that lets anyone publish and read any path.
	AuthHTTPAddress string
	// API turns on the control API on a free port (MediaMTX.APIAddr).
	API bool
	// Metrics turns on the Prometheus endpoint on a free port.
	Metrics bool
	// WriteQueueSize is the per-reader queue in packets; default 512.
	WriteQueueSize int
	// LogLevel is error, warn, info (default) or debug.
	LogLevel string
}

// MediaMTX is a running MediaMTX.
type MediaMTX struct {
	Proc        *Proc
	Version     MediaMTXVersion
	Dir         string // holds mediamtx.yml
	RTMPAddr    string // 127.0.0.1:PORT
	RTSPAddr    string // 127.0.0.1:PORT (TCP)
	RTPPort     int    // UDP RTP port (RTCP is RTPPort+1)
	APIAddr     string // if API
	MetricsAddr string // if Metrics
}

// RTMPURL returns rtmp://ADDR/path.
func (m *MediaMTX) RTMPURL(path string) string { return "rtmp://" + m.RTMPAddr + "/" + path }

// RTSPURL returns rtsp://ADDR/path.
func (m *MediaMTX) RTSPURL(path string) string { return "rtsp://" + m.RTSPAddr + "/" + path }

// MediaMTXConfig renders the mediamtx.yml MediaMTX writes.
func MediaMTXConfig(m *MediaMTX, o MediaMTXOpts) string {
	var b strings.Builder
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	wq := o.WriteQueueSize
	if wq <= 0 {
		wq = 512
	}
	fmt.Fprintf(&b, "logLevel: %s\nlogDestinations: [stdout]\nreadTimeout: 10s\nwriteTimeout: 10s\nwriteQueueSize: %d\n", level, wq)
	if o.AuthHTTPAddress != "" {
		fmt.Fprintf(&b, "authMethod: http\nauthHTTPAddress: %s\n", yamlString(o.AuthHTTPAddress))
	} else {
		b.WriteString("authMethod: internal\nauthInternalUsers:\n- user: any\n  pass:\n  ips: []\n  permissions:\n" +
			"  - action: publish\n    path:\n  - action: read\n    path:\n  - action: playback\n    path:\n" +
			"  - action: api\n  - action: metrics\n")
	}
	if m.APIAddr != "" {
		fmt.Fprintf(&b, "api: yes\napiAddress: %s\n", m.APIAddr)
	} else {
		b.WriteString("api: no\n")
	}
	if m.MetricsAddr != "" {
		fmt.Fprintf(&b, "metrics: yes\nmetricsAddress: %s\n", m.MetricsAddr)
	} else {
		b.WriteString("metrics: no\n")
	}
	b.WriteString("pprof: no\nplayback: no\n")
	fmt.Fprintf(&b, "rtsp: yes\nrtspTransports: [udp, tcp]\nrtspEncryption: \"no\"\nrtspAddress: %s\nrtpAddress: 127.0.0.1:%d\nrtcpAddress: 127.0.0.1:%d\n",
		m.RTSPAddr, m.RTPPort, m.RTPPort+1)
	fmt.Fprintf(&b, "rtmp: yes\nrtmpEncryption: \"no\"\nrtmpAddress: %s\n", m.RTMPAddr)
	b.WriteString("hls: no\nwebrtc: no\nsrt: no\n")
	b.WriteString("paths:\n  all_others:\n")
	return b.String()
}

func yamlString(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid YAML double-quoted scalar
	return string(b)
}

// StartMediaMTX builds (or reuses) the MediaMTX binary, starts it with every
// listener on a free 127.0.0.1 port and waits for its RTMP and RTSP ports.
func StartMediaMTX(t testing.TB, o MediaMTXOpts) *MediaMTX {
	t.Helper()
	v := o.Version
	if v == "" {
		v = MediaMTXVersion(os.Getenv("PORTIER_MEDIAMTX_VERSION"))
	}
	if v == "" {
		v = DefaultMediaMTXVersion
	}
	bin := MediaMTXBinary(t, v)
	var lastErr error
	for range 3 {
		m, err := startMediaMTX(t, bin, v, o)
		if err == nil {
			return m
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("mediamtx %s: %v", v, lastErr)
	return nil
}

func startMediaMTX(t testing.TB, bin string, v MediaMTXVersion, o MediaMTXOpts) (*MediaMTX, error) {
	dir := t.TempDir()
	m := &MediaMTX{Version: v, Dir: dir, RTMPAddr: FreeAddr(t), RTSPAddr: FreeAddr(t), RTPPort: FreeUDPPortPair(t)}
	if o.API {
		m.APIAddr = FreeAddr(t)
	}
	if o.Metrics {
		m.MetricsAddr = FreeAddr(t)
	}
	conf := filepath.Join(dir, "mediamtx.yml")
	if err := os.WriteFile(conf, []byte(MediaMTXConfig(m, o)), 0o644); err != nil {
		return nil, fmt.Errorf("write mediamtx.yml: %w", err)
	}
	cmd := exec.Command(bin, conf)
	cmd.Dir = dir
	p, err := startProc(t, "mediamtx", cmd, false)
	if err != nil {
		return nil, err
	}
	m.Proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, addr := range []string{m.RTMPAddr, m.RTSPAddr} {
		if err := WaitTCP(ctx, addr, p); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return m, nil
}

var buildMu sync.Mutex // serialises builds inside one test binary

// MediaMTXBinary returns the path of a MediaMTX binary of version v, building
// it on first use into the user cache directory ($XDG_CACHE_HOME or
// ~/.cache)/portier-peers/mediamtx-VERSION. A file lock keeps parallel test
// binaries from building it twice. The build follows LIBRARIES.md: download
// the module source from the Go module proxy (`go install` cannot be used),
// copy it, write internal/core/VERSION and an empty HLS player script, and
// `go build` it (about a minute).
func MediaMTXBinary(t testing.TB, v MediaMTXVersion) string {
	t.Helper()
	RequireTool(t, "go")
	if !strings.HasPrefix(string(v), "v") || strings.ContainsAny(string(v), "/ ") {
		t.Fatalf("mediamtx: bad version %q", v)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "portier-peers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mediamtx cache dir: %v", err)
	}
	bin := filepath.Join(dir, "mediamtx-"+string(v))
	if isExecutable(bin) {
		return bin
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("mediamtx build lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("mediamtx build lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) { // another process built it while we waited
		return bin
	}
	start := time.Now()
	t.Logf("building mediamtx %s into %s (once per machine)", v, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := buildMediaMTX(ctx, dir, bin, v); err != nil {
		t.Fatalf("build mediamtx %s: %v", v, err)
	}
	t.Logf("built mediamtx %s in %s", v, time.Since(start).Round(time.Second))
	return bin
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func buildMediaMTX(ctx context.Context, cacheDir, bin string, v MediaMTXVersion) error {
	scratch, err := os.MkdirTemp(cacheDir, "build-mediamtx-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/bluenviron/mediamtx@"+string(v))
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
	if err := os.WriteFile(filepath.Join(src, "internal", "core", "VERSION"), []byte(v), 0o644); err != nil {
		return fmt.Errorf("write VERSION: %w", err)
	}
	// Normally downloaded by go generate; the tests keep HLS off.
	if err := os.WriteFile(filepath.Join(src, "internal", "servers", "hls", "hls.min.js"), nil, 0o644); err != nil {
		return fmt.Errorf("write hls.min.js: %w", err)
	}
	tmpBin := filepath.Join(scratch, "mediamtx")
	build := exec.CommandContext(ctx, "go", "build", "-o", tmpBin, ".")
	build.Dir, build.Env = src, env
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, lastLines(string(out), 10))
	}
	if err := os.Rename(tmpBin, bin); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	return nil
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return lastLines(string(ee.Stderr), 5)
	}
	return ""
}

// copyTree copies a read-only module directory into dst, making it writable.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
