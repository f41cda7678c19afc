package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// Attacks on a relay before anything is authorised, against a real
// `portier relay` process (an edge with no control plane: nothing in these
// attacks reaches authorisation). Reports the process's peak RSS and how
// many attack connections it still holds at the end.
//
//   - chunk-streams: 16 connections that each set chunk size 1 and open
//     1,000 chunk streams announcing 8 MiB messages, one byte each (about
//     15 KB sent per connection), then hold.
//   - slowloris: 256 HTTP connections on the relay's HTTP listener, half
//     drip-feeding a request body, half dripping headers, one byte a second.
//   - both at once.
//
// To measure another build (e.g. main's, for a before/after comparison),
// set PORTIER_BENCH_BIN to its binary: startPortier runs it instead.
func BenchmarkPreAuthAttackMemory(b *testing.B) {
	for _, tc := range []struct {
		name       string
		chunkConns int
		slowConns  int
		hold       time.Duration
	}{
		{"chunk-streams", attackChunkConns, 0, 5 * time.Second},
		{"slowloris", 0, attackSlowConns, attackSlowHold},
		{"both", attackChunkConns, attackSlowConns, attackSlowHold},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				res := runPreAuthAttack(b, tc.chunkConns, tc.slowConns, tc.hold)
				b.ReportMetric(float64(res.baselineKB)/1024, "baseline-rss-MB")
				b.ReportMetric(float64(res.peakKB)/1024, "peak-rss-MB")
				b.ReportMetric(res.heapMB, "heap-inuse-MB")
				b.ReportMetric(float64(res.openAtEnd), "attack-conns-open")
				b.ReportMetric(float64(res.sentBytes)/1024, "sent-KB")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

const (
	attackChunkConns   = 16
	attackChunkStreams = 1000
	attackSlowConns    = 256
	// attackSlowHold outlasts the relay's default HTTP read timeout (30 s)
	// and header timeout (10 s).
	attackSlowHold = 35 * time.Second
)

type attackResult struct {
	baselineKB, peakKB int64
	openAtEnd          int
	sentBytes          int64
	heapMB             float64 // Go heap in use under the attack (from /metrics)
}

func runPreAuthAttack(b *testing.B, chunkConns, slowConns int, hold time.Duration) attackResult {
	rtmpAddr, httpAddr := peers.FreeAddr(b), peers.FreeAddr(b)
	p := startPortier(b, "attacked-edge", nil, "relay", "--role", "edge", "--name", "attacked-edge",
		"--origins", "127.0.0.1:9", "--rtmp-addr", rtmpAddr, "--http-addr", httpAddr, "--rtsp-addr", "", "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := waitHTTPOK(ctx, "http://"+httpAddr+"/readyz", p); err != nil {
		cancel()
		b.Fatalf("relay: %v\n%s", err, p.logTail(4000))
	}
	cancel()
	s, err := StartProcSampler(p.PID(), 100*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		sent  int64
	)
	keep := func(c net.Conn, n int) {
		mu.Lock()
		conns, sent = append(conns, c), sent+int64(n)
		mu.Unlock()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), hold)
	defer cancel()
	var wg sync.WaitGroup
	wire := chunkStreamAttack(attackChunkStreams)
	for range chunkConns {
		c, err := net.DialTimeout("tcp", rtmpAddr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := newPlayer(c, 10*time.Second).handshake(); err != nil {
			b.Fatalf("handshake: %v", err)
		}
		n, err := c.Write(wire)
		if err != nil {
			b.Logf("attack write: %v (the relay closed the connection)", err)
		}
		_ = c.SetDeadline(time.Time{})
		keep(c, 1+1536+1536+n)
	}
	for i := range slowConns {
		c, err := net.DialTimeout("tcp", httpAddr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		head := "POST /healthz HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000\r\n\r\n" // drip-fed body
		if i%2 == 1 {
			head = "GET /healthz HTTP/1.1\r\nHost: relay\r\n" // dripped headers
		}
		n, _ := io.WriteString(c, head)
		keep(c, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			drip(ctx, c, i%2 == 1)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	heap := scrapeGauge(b, "http://"+httpAddr+"/metrics", "go_memstats_heap_inuse_bytes")
	st, err := s.Stop()
	if err != nil {
		b.Fatal(err)
	}
	return attackResult{baselineKB: st.BaselineRSSKB, peakKB: st.PeakRSSKB, openAtEnd: countOpen(conns), sentBytes: sent,
		heapMB: heap / (1 << 20)}
}

// scrapeGauge reads one unlabelled metric from a Prometheus endpoint (-1
// when it cannot).
func scrapeGauge(tb testing.TB, url, name string) float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		tb.Logf("scrape %s: %v", url, err)
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// drip writes one byte a second to c until ctx ends or the server closes.
func drip(ctx context.Context, c net.Conn, header bool) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b := []byte("x")
		if header && i%8 == 7 {
			b = []byte("\r\nX-Drip: ") // keep the header block valid
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// countOpen counts the connections the server has not closed: a read
// that times out (rather than seeing EOF or a reset) means still open.
func countOpen(conns []net.Conn) int {
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 64<<10)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue // a reply (e.g. 405) on a connection still open
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
			break
		}
	}
	return open
}

// chunkStreamAttack: SetChunkSize 1, then n chunk streams each announcing an
// 8 MiB video message and sending its first byte.
func chunkStreamAttack(n int) []byte {
	wire := []byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1} // SetChunkSize(1) on chunk stream 2
	size := 8 << 20
	for i := range n {
		csid := 3 + i
		switch {
		case csid < 64:
			wire = append(wire, byte(csid))
		case csid < 320:
			wire = append(wire, 0, byte(csid-64))
		default:
			wire = append(wire, 1, byte(csid-64), byte((csid-64)>>8))
		}
		wire = append(wire, 0, 0, 0, byte(size>>16), byte(size>>8), byte(size), 9, 1, 0, 0, 0, 0x17)
	}
	return wire
}
