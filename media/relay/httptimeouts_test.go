package relay

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portier/portier/media/httpserve"
)

// closedWithin reports how long the server took to close nc (reads until
// EOF or an error other than our own deadline), failing after limit.
func closedWithin(t *testing.T, nc net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// The relay's HTTP server cuts drip-fed bodies and idle keep-alives, while
// an HTTP-FLV viewer keeps receiving past the write timeout.
func TestRelayHTTPTimeouts(t *testing.T) {
	hs := httptest.NewServer(&allowAll{})
	defer hs.Close()
	to := httpserve.Timeouts{Read: time.Second, Write: time.Second, Idle: time.Second}
	r := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL, HTTPTimeouts: to})
	addr := r.HTTPAddr().String()

	t.Run("drip-fed body", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := io.WriteString(nc, "POST /healthz HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go func() { // one byte every 100 ms, for as long as the server takes it
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					if _, err := nc.Write([]byte{'x'}); err != nil {
						return
					}
				}
			}
		}()
		d := closedWithin(t, nc, 5*time.Second)
		t.Logf("drip-fed connection closed after %v", d)
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := closedWithin(t, nc, 5*time.Second)
		t.Logf("idle keep-alive closed after %v", d)
	})

	t.Run("HTTP-FLV keeps flowing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		pub, err := publishSynthetic(t, ctx, "rtmp://"+r.RTMPAddr().String()+"/live", "flv?key=good")
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		go feed(ctx, pub)
		resp, err := http.Get("http://" + addr + "/live/flv.flv")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// Read for three times the read and write timeouts; bytes must
		// still arrive at the end.
		buf := make([]byte, 4096)
		start := time.Now()
		var late int
		for time.Since(start) < 3*time.Second {
			n, err := resp.Body.Read(buf)
			if err != nil {
				t.Fatalf("HTTP-FLV ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
			if time.Since(start) > 2500*time.Millisecond {
				late += n
			}
		}
		if late == 0 {
			t.Fatal("no media in the last half second")
		}
	})
}
