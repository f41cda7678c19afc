package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SRSBinaryEnv names the environment variable that holds the path of an SRS
// binary (trunk/objs/srs of a source build; see docs/benchmarks.md). SRS is
// not packaged for Debian, so nothing builds it for the tests.
const SRSBinaryEnv = "PORTIER_BENCH_SRS"

// SRSOpts configures StartSRS.
//
// Without LowLatency the vhost sets nothing that concerns delivery, so SRS
// runs with the defaults an operator gets from its sample configs (SRS 7.0):
// merged write with mw_latency 350 ms and mw_msgs 8 (a player's messages are
// sent once more than 8 are queued and they span more than 350 ms, in one
// writev, with SO_SNDBUF sized for 350 ms at 4 Mbit/s), min_latency off,
// tcp_nodelay off, gop_cache on, queue_length 30 s, merged read off.
type SRSOpts struct {
	// Bin is the SRS binary; default $PORTIER_BENCH_SRS. When both are empty
	// the test is skipped.
	Bin string
	// LowLatency turns merged write off so that each message is written
	// as it arrives, like nginx-rtmp does: min_latency on (mw_msgs 0) and
	// tcp_nodelay on as in SRS's conf/realtime.conf, and mw_latency 0
	// (realtime.conf keeps 100 ms, which would still batch 100 ms).
	// gop_cache stays on (it only shortens a player's start). SRS sizes
	// SO_SNDBUF from mw_latency, so with 0 a player socket gets the
	// kernel's minimum send buffer (4608 bytes).
	LowLatency bool
	// LogLevel is srs_log_level_v2: trace, debug, info, warn (default) or
	// error.
	LogLevel string
}

// SRS is a running SRS (ossrs/srs) with an RTMP listener and an HTTP server
// that remuxes every stream to HTTP-FLV.
type SRS struct {
	Proc     *Proc
	Version  string // from `srs -v`, e.g. "7.0.18"
	Dir      string // holds srs.conf and srs.pid
	RTMPAddr string // 127.0.0.1:PORT
	HTTPAddr string // 127.0.0.1:PORT of the HTTP-FLV server
}

// RTMPURL returns rtmp://ADDR/app/name.
func (s *SRS) RTMPURL(app, name string) string {
	return fmt.Sprintf("rtmp://%s/%s/%s", s.RTMPAddr, app, name)
}

// HTTPFLVURL returns http://ADDR/app/name.flv, where SRS serves the stream
// published as RTMPURL(app, name).
func (s *SRS) HTTPFLVURL(app, name string) string {
	return fmt.Sprintf("http://%s/%s/%s.flv", s.HTTPAddr, app, name)
}

// SRSConfig renders the srs.conf StartSRS writes for s.
func SRSConfig(s *SRS, o SRSOpts) string {
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen %s;\n", s.RTMPAddr)
	// Above the load client's MaxPlayers (5000) plus the publisher and probes.
	b.WriteString("max_connections 6000;\n")
	b.WriteString("daemon off;\n")
	fmt.Fprintf(&b, "pid %s;\n", filepath.Join(s.Dir, "srs.pid"))
	fmt.Fprintf(&b, "srs_log_tank console;\nsrs_log_level_v2 %s;\n", level)
	fmt.Fprintf(&b, "ff_log_dir %s;\n", s.Dir)
	b.WriteString("http_api {\n    enabled off;\n}\n")
	fmt.Fprintf(&b, "http_server {\n    enabled on;\n    listen %s;\n    dir %s;\n}\n", s.HTTPAddr, s.Dir)
	b.WriteString("vhost __defaultVhost__ {\n")
	if o.LowLatency {
		b.WriteString("    min_latency on;\n    tcp_nodelay on;\n")
		b.WriteString("    play {\n        mw_latency 0;\n        mw_msgs 0;\n        gop_cache on;\n    }\n")
	}
	b.WriteString("    http_remux {\n        enabled on;\n        mount [vhost]/[app]/[stream].flv;\n    }\n")
	b.WriteString("}\n")
	return b.String()
}

// SRSVersion runs `bin -v` (SRS prints its version to stderr).
func SRSVersion(bin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v")
	cmd.Env = srsEnv()
	out, err := cmd.CombinedOutput()
	v := strings.TrimSpace(string(out))
	if err != nil || v == "" || strings.ContainsAny(v, " \n") {
		return "", fmt.Errorf("%s -v: %v: %q", bin, err, lastLines(v, 3))
	}
	return v, nil
}

// srsEnv is the environment without SRS_* variables: SRS lets them override
// its config file (SRS_HTTP_SERVER_LISTEN, SRS_VHOST_PLAY_MW_LATENCY, …).
func srsEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SRS_") {
			env = append(env, kv)
		}
	}
	return env
}

// StartSRS starts SRS with its RTMP and HTTP listeners on free 127.0.0.1
// ports and its config in t.TempDir(), and waits until both accept. It
// retries on a port taken in between.
func StartSRS(t testing.TB, o SRSOpts) *SRS {
	t.Helper()
	bin := o.Bin
	if bin == "" {
		bin = os.Getenv(SRSBinaryEnv)
	}
	if bin == "" {
		// Skipped even with CI=true (unlike RequireTool): make deps-test
		// does not build SRS.
		t.Skipf("SRS: set %s to an SRS binary (trunk/objs/srs, see docs/benchmarks.md)", SRSBinaryEnv)
	}
	if !isExecutable(bin) {
		t.Fatalf("SRS: %s=%q is not an executable file", SRSBinaryEnv, bin)
	}
	version, err := SRSVersion(bin)
	if err != nil {
		t.Fatalf("SRS: %v", err)
	}
	var lastErr error
	for range 3 {
		s, err := startSRS(t, bin, version, o)
		if err == nil {
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("srs %s: %v", version, lastErr)
	return nil
}

func startSRS(t testing.TB, bin, version string, o SRSOpts) (*SRS, error) {
	dir := t.TempDir()
	s := &SRS{Version: version, Dir: dir, RTMPAddr: FreeAddr(t), HTTPAddr: FreeAddr(t)}
	conf := filepath.Join(dir, "srs.conf")
	if err := os.WriteFile(conf, []byte(SRSConfig(s, o)), 0o644); err != nil {
		return nil, fmt.Errorf("write srs.conf: %w", err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Dir = dir
	cmd.Env = srsEnv()
	p, err := startProc(t, "srs", cmd, false)
	if err != nil {
		return nil, err
	}
	s.Proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, addr := range []string{s.RTMPAddr, s.HTTPAddr} {
		if err := WaitTCP(ctx, addr, p); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return s, nil
}
