package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/tests/peers"
)

// The HLS origin benchmark's fixed shape: everything is bounded in count
// and time so that both backends together run in well under 3 minutes.
const (
	hlsBenchSegmentBytes = 500_000 // 2 Mbit/s × 2 s
	hlsBenchRenditions   = 3       // writers in parallel, one reader each
	hlsBenchPacedSegs    = 5       // per rendition, one every hlsBenchPace
	hlsBenchPace         = 2 * time.Second
	hlsBenchFastSegs     = 20 // per rendition, back to back
	hlsBenchWindow       = 5  // segments listed in the media playlist
	hlsBenchPoll         = 2 * time.Millisecond
	hlsBenchReadSegs     = 8 // stored segments the throughput readers share
	hlsBenchReadFor      = 8 * time.Second
)

var hlsBenchReaders = []int{16, 64}

// hlsOriginRow is one backend's results.
type hlsOriginRow struct {
	Backend string
	Avail   map[string]latency // "paced"/"fast" × "segment"/"playlist"
	Reads   []hlsReadRow
}

type latency struct{ P50, P99 time.Duration }

type hlsReadRow struct {
	Readers   int
	ReqPerSec float64
	MBPerSec  float64
	P99       time.Duration
	CPUPerGB  float64 // the origin process
	PeerPerGB float64 // the S3 server (0 for fs)
	Errors    int
}

// BenchmarkHLSOrigin measures a `portier hls-origin` process (started from
// a build of the working tree, registered with a `portier serve` control
// plane) on its filesystem backend and on S3 (a real versitygw):
//
//  1. availability: 3 renditions written in parallel, 500 KB segments then
//     the playlist that lists them, paced at one segment per 2 s and back to
//     back; a concurrent reader per rendition polls (every 2 ms) the
//     segment and the playlist with the cluster token. Reported: from the
//     PUT's response to the reader's first successful GET (segment) or first
//     GET with the new content (playlist), p50 and p99, in ms; 0 when the
//     reader saw it before the writer had its response;
//  2. GET throughput: 16 and 64 readers GET 8 stored 500 KB segments for 8 s
//     each: requests/s, MB/s, p99, and the origin's CPU seconds per GB
//     served (from /proc/PID/stat; for S3, the gateway's too).
func BenchmarkHLSOrigin(b *testing.B) {
	var mu sync.Mutex
	rows := map[string]hlsOriginRow{}
	for _, backend := range []string{"fs", "s3"} {
		b.Run(backend, func(b *testing.B) {
			mu.Lock()
			_, done := rows[backend]
			mu.Unlock()
			if done { // the framework may call again with a larger b.N
				return
			}
			row := runHLSOriginBench(b, backend)
			for _, mode := range []string{"paced", "fast"} {
				for _, kind := range []string{"segment", "playlist"} {
					l := row.Avail[mode+"/"+kind]
					b.ReportMetric(ms(l.P50), mode+"-"+kind+"-p50-ms")
					b.ReportMetric(ms(l.P99), mode+"-"+kind+"-p99-ms")
				}
			}
			for _, r := range row.Reads {
				n := fmt.Sprintf("r%d-", r.Readers)
				b.ReportMetric(r.ReqPerSec, n+"req/s")
				b.ReportMetric(r.MBPerSec, n+"MB/s")
				b.ReportMetric(ms(r.P99), n+"p99-ms")
				b.ReportMetric(r.CPUPerGB, n+"cpu-s/GB")
			}
			b.ReportMetric(0, "ns/op") // one fixed-length run: time per op says nothing
			mu.Lock()
			rows[backend] = row
			mu.Unlock()
		})
	}
	var out []hlsOriginRow
	for _, k := range []string{"fs", "s3"} {
		if r, ok := rows[k]; ok {
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		fmt.Fprintf(os.Stdout, "\nHLS origin, %d KB segments:\n%s\n", hlsBenchSegmentBytes/1000, formatHLSOriginTable(out))
	}
}

func runHLSOriginBench(b *testing.B, backend string) hlsOriginRow {
	var (
		storage string
		env     []string
		extra   []string
		peerPID int
	)
	if backend == "s3" {
		g := peers.StartVersityGW(b) // skips outside CI when it cannot be built
		g.CreateBucket(b, "media")
		storage = "s3://media/portier/hls"
		env = []string{"AWS_ACCESS_KEY_ID=" + g.AccessKey, "AWS_SECRET_ACCESS_KEY=" + g.SecretKey}
		extra = []string{"--s3-endpoint", g.Endpoint(), "--s3-insecure", "--s3-region", "us-east-1"}
		peerPID = g.Proc.PID()
	} else {
		storage = b.TempDir()
	}
	cp := startControlPlane(b, "")
	addr := peers.FreeAddr(b)
	args := append([]string{"hls-origin", "--name", "hls-bench", "--control", cp.URL, "--cluster-token", cp.ClusterToken,
		"--http-addr", addr, "--storage", storage, "--log-level", "warn"}, extra...)
	p := startPortier(b, "hls-origin", env, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := waitHTTPOK(ctx, "http://"+addr+"/healthz", p); err != nil {
		cancel()
		b.Fatalf("hls-origin: %v\n%s", err, p.logTail(4000))
	}
	cancel()

	h := &hlsBench{tb: b, base: "http://" + addr + "/hls/s/", token: cp.ClusterToken,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}}
	defer h.client.CloseIdleConnections()
	h.seg = make([]byte, hlsBenchSegmentBytes)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range h.seg {
		h.seg[i] = byte(r.Uint32())
	}

	row := hlsOriginRow{Backend: backend, Avail: map[string]latency{}}
	for i, mode := range []struct {
		name string
		segs int
		pace time.Duration
	}{{"paced", hlsBenchPacedSegs, hlsBenchPace}, {"fast", hlsBenchFastSegs, 0}} {
		seg, pl := h.availability(int64(10+i), mode.segs, mode.pace)
		row.Avail[mode.name+"/segment"] = percentiles(seg)
		row.Avail[mode.name+"/playlist"] = percentiles(pl)
	}
	for i, n := range hlsBenchReaders {
		row.Reads = append(row.Reads, h.throughput(int64(20+i), n, p.PID(), peerPID))
	}
	return row
}

type hlsBench struct {
	tb     testing.TB
	base   string
	token  string
	client *http.Client
	seg    []byte
}

// put uploads body with a task credential and returns when the response
// has been received.
func (h *hlsBench) put(cred, path string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, h.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PUT %s: %s", path, res.Status)
	}
	return nil
}

// get reads path with the cluster token: status and body.
func (h *hlsBench) get(client *http.Client, path string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, h.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// pollUntil GETs path every hlsBenchPoll until ok accepts the answer or 10 s
// pass, and returns when the accepted answer was received.
func (h *hlsBench) pollUntil(client *http.Client, path string, ok func(int, []byte) bool) (time.Time, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body, err := h.get(client, path)
		if err == nil && ok(st, body) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("GET %s never succeeded (last %d %v)", path, st, err)
		}
		select {
		case <-time.After(hlsBenchPoll):
		case <-time.After(time.Until(deadline)):
		}
	}
}

// availability writes segs segments per rendition (and the playlist after
// each) for hlsBenchRenditions renditions of stream in parallel, one
// segment per pace (0: back to back), with a concurrent reader per
// rendition, and returns the segment and playlist availability latencies.
func (h *hlsBench) availability(stream int64, segs int, pace time.Duration) (segLat, plLat []time.Duration) {
	cred := hlscred.Sign(h.token, hlscred.Cred{StreamID: stream, TaskID: 1, Epoch: 1})
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, hlsBenchRenditions)
	start := time.Now()
	for r := 0; r < hlsBenchRenditions; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reader := &http.Client{Timeout: 10 * time.Second}
			defer reader.CloseIdleConnections()
			rend := fmt.Sprintf("%d/v%d/", stream, r)
			var listed []string
			for i := 0; i < segs; i++ {
				if pace > 0 {
					at := start.Add(time.Duration(i) * pace)
					if d := time.Until(at); d > 0 {
						<-time.After(d) // the writer's pace, not a wait for a condition
					}
				}
				name := fmt.Sprintf("seg_%d.ts", i)
				body := append([]byte(nil), h.seg...)
				copy(body, fmt.Sprintf("stream %d rendition %d segment %d ", stream, r, i))
				// The reader polls from before the upload starts.
				seen := make(chan time.Time, 1)
				perr := make(chan error, 1)
				go func() {
					t, err := h.pollUntil(reader, rend+name, func(st int, b []byte) bool { return st == 200 && len(b) == len(body) })
					seen <- t
					perr <- err
				}()
				if err := h.put(cred, rend+name, body); err != nil {
					errs <- err
					return
				}
				putDone := time.Now()
				t := <-seen
				if err := <-perr; err != nil {
					errs <- err
					return
				}
				listed = append(listed, name)
				if len(listed) > hlsBenchWindow {
					listed = listed[1:]
				}
				pl := mediaPlaylist(i+1-len(listed), listed)
				go func() {
					t, err := h.pollUntil(reader, rend+"index.m3u8", func(st int, b []byte) bool { return st == 200 && string(b) == pl })
					seen <- t
					perr <- err
				}()
				if err := h.put(cred, rend+"index.m3u8", []byte(pl)); err != nil {
					errs <- err
					return
				}
				plDone := time.Now()
				tp := <-seen
				if err := <-perr; err != nil {
					errs <- err
					return
				}
				mu.Lock()
				segLat = append(segLat, max(0, t.Sub(putDone)))
				plLat = append(plLat, max(0, tp.Sub(plDone)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.tb.Fatalf("availability (stream %d): %v", stream, err)
	}
	return segLat, plLat
}

func mediaPlaylist(seq int, segs []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	for _, s := range segs {
		fmt.Fprintf(&sb, "#EXTINF:2.000,\n%s\n", s)
	}
	return sb.String()
}

// throughput stores hlsBenchReadSegs segments in stream and has n readers
// GET them round robin for hlsBenchReadFor.
func (h *hlsBench) throughput(stream int64, n, pid, peerPID int) hlsReadRow {
	cred := hlscred.Sign(h.token, hlscred.Cred{StreamID: stream, TaskID: 1, Epoch: 1})
	var names []string
	for i := 0; i < hlsBenchReadSegs; i++ {
		name := fmt.Sprintf("%d/v0/seg_%d.ts", stream, i)
		if err := h.put(cred, name, h.seg); err != nil {
			h.tb.Fatal(err)
		}
		names = append(names, name)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	defer client.CloseIdleConnections()
	cpu0, err := ReadProcUsage(pid)
	if err != nil {
		h.tb.Fatal(err)
	}
	var peer0 ProcUsage
	if peerPID > 0 {
		peer0, _ = ReadProcUsage(peerPID)
	}
	var (
		mu     sync.Mutex
		lats   []time.Duration
		bytesN int64
		errsN  int
		wg     sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(hlsBenchReadFor)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			var myBytes int64
			myErrs := 0
			for i := g; time.Now().Before(end); i++ {
				t0 := time.Now()
				st, body, err := h.get(client, names[i%len(names)])
				if err != nil || st != 200 || len(body) != len(h.seg) {
					myErrs++
					continue
				}
				my = append(my, time.Since(t0))
				myBytes += int64(len(body))
			}
			mu.Lock()
			lats = append(lats, my...)
			bytesN += myBytes
			errsN += myErrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, err := ReadProcUsage(pid)
	if err != nil {
		h.tb.Fatal(err)
	}
	gb := float64(bytesN) / 1e9
	row := hlsReadRow{Readers: n, Errors: errsN,
		ReqPerSec: float64(len(lats)) / wall.Seconds(),
		MBPerSec:  float64(bytesN) / 1e6 / wall.Seconds(),
		P99:       percentiles(lats).P99}
	if gb > 0 {
		row.CPUPerGB = (cpu1.CPUSeconds - cpu0.CPUSeconds) / gb
		if peerPID > 0 {
			if peer1, err := ReadProcUsage(peerPID); err == nil {
				row.PeerPerGB = (peer1.CPUSeconds - peer0.CPUSeconds) / gb
			}
		}
	}
	if errsN > 0 {
		h.tb.Logf("%d readers: %d failed GETs", n, errsN)
	}
	return row
}

func percentiles(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return latency{P50: at(0.50), P99: at(0.99)}
}

func formatHLSOriginTable(rows []hlsOriginRow) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-8s %-8s %-9s %9s %9s\n", "backend", "pace", "object", "p50 ms", "p99 ms")
	for _, r := range rows {
		for _, mode := range []string{"paced", "fast"} {
			for _, kind := range []string{"segment", "playlist"} {
				l := r.Avail[mode+"/"+kind]
				fmt.Fprintf(&sb, "%-8s %-8s %-9s %9.1f %9.1f\n", r.Backend, mode, kind, ms(l.P50), ms(l.P99))
			}
		}
	}
	fmt.Fprintf(&sb, "\n%-8s %7s %9s %8s %9s %12s %12s %7s\n", "backend", "readers", "req/s", "MB/s", "p99 ms", "cpu-s/GB", "s3 cpu-s/GB", "errors")
	for _, r := range rows {
		for _, t := range r.Reads {
			fmt.Fprintf(&sb, "%-8s %7d %9.0f %8.0f %9.1f %12.2f %12.2f %7d\n", r.Backend, t.Readers, t.ReqPerSec, t.MBPerSec, ms(t.P99), t.CPUPerGB, t.PeerPerGB, t.Errors)
		}
	}
	return sb.String()
}
