package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// startRole runs a role's command in-process until the test ends and waits
// for /readyz (or /healthz) on httpAddr.
func startRole(t *testing.T, run func(context.Context, []string) error, httpAddr, probe string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("role did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("role exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedWithin fails unless the server closes nc within limit.
func closedWithin(t *testing.T, nc net.Conn, limit time.Duration) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
}

// checkTimeouts opens a drip-fed body and an idle keep-alive against
// addr; the server must close both within a few seconds (timeouts of 1 s).
func checkTimeouts(t *testing.T, addr, path string) {
	t.Helper()
	drip, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer drip.Close()
	if _, err := io.WriteString(drip, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := drip.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	closedWithin(t, drip, 5*time.Second)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	closedWithin(t, idle, 5*time.Second)
}

var shortTimeouts = []string{"--http-read-timeout", "1s", "--http-write-timeout", "1s", "--http-idle-timeout", "1s"}

// Every role's HTTP listener cuts drip-fed bodies and idle keep-alives.
func TestHTTPTimeoutsOfEveryRole(t *testing.T) {
	t.Run("serve", func(t *testing.T) {
		addr := freeAddr(t)
		startRole(t, runServe, addr, "/readyz", append([]string{"--database-url", filepath.Join(t.TempDir(), "p.db"),
			"--http-addr", addr, "--cluster-token", "ct"}, shortTimeouts...)...)
		checkTimeouts(t, addr, "/api/v1/streams")
	})
	t.Run("relay", func(t *testing.T) {
		addr := freeAddr(t)
		startRole(t, runRelay, addr, "/readyz", append([]string{"--role", "edge", "--name", "e", "--origins", "127.0.0.1:9",
			"--rtmp-addr", "127.0.0.1:0", "--rtsp-addr", "", "--http-addr", addr, "--log-level", "warn"}, shortTimeouts...)...)
		checkTimeouts(t, addr, "/healthz")
	})
	t.Run("run", func(t *testing.T) {
		t.Setenv("PORTIER_ADMIN_PASSWORD", "first-admin-password")
		addr := freeAddr(t)
		startRole(t, runAll, addr, "/readyz", append([]string{"--data-dir", t.TempDir(), "--http-addr", addr,
			"--rtmp-addr", freeAddr(t), "--rtsp-addr", "", "--no-concierge", "--log-level", "warn"}, shortTimeouts...)...)
		checkTimeouts(t, addr, "/api/v1/streams")
	})
}
