package peers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may still take it before the caller binds it; helpers
// that start servers retry on "address in use".
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns "127.0.0.1:PORT" with a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// FreeUDPPortPair returns an even UDP port p on 127.0.0.1 such that p and
// p+1 were both free (RTSP servers need RTP on an even port and RTCP on the
// next one).
func FreeUDPPortPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("free UDP port: %v", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 == 1 {
			p--
		}
		a, errA := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		b, errB := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if errA == nil && errB == nil {
			return p
		}
	}
	t.Fatalf("no free even/odd UDP port pair after 100 tries")
	return 0
}

// WaitTCP polls addr until it accepts a TCP connection, the context ends or
// proc (if not nil) exits.
func WaitTCP(ctx context.Context, addr string, proc *Proc) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		var done <-chan struct{}
		if proc != nil {
			done = proc.Done()
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited (code %d) before %s accepted: %s",
				proc.Name(), proc.ExitCode(), addr, lastLines(proc.tail(4096), 8))
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to accept: %w (last: %v)", addr, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// debianPackages names the package that provides each tool on Debian.
var debianPackages = map[string]string{
	"ffmpeg":         "ffmpeg",
	"ffprobe":        "ffmpeg",
	"ffplay":         "ffmpeg",
	"nginx":          "nginx and libnginx-mod-rtmp",
	"go":             "golang (or a Go toolchain from go.dev)",
	"rtmpdump":       "rtmpdump",
	"gst-launch-1.0": "gstreamer1.0-tools",
	"supervisord":    "supervisor",
	"supervisorctl":  "supervisor",
	NginxRTMPModule:  "libnginx-mod-rtmp",
	"chromium":       "chromium",
	"chromedriver":   "chromium-driver",
}

// RequireTool checks that name is on PATH (or, if name is an absolute path,
// that the file exists). When it is missing the test fails if CI=true and is
// skipped otherwise, with a message naming the Debian package to install.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	var path string
	var err error
	if len(name) > 0 && name[0] == '/' {
		_, err = os.Stat(name)
		path = name
	} else {
		path, err = exec.LookPath(name)
	}
	if err == nil {
		return path
	}
	pkg := debianPackages[name]
	if pkg == "" {
		pkg = "the package that provides " + name
	}
	msg := fmt.Sprintf("%s not found (%v): install the Debian package %s (make deps-test)", name, err, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
