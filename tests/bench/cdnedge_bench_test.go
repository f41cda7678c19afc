package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/tests/peers"
)

// The CDN edge benchmark's fixed shape, bounded in count and time (about
// 40 s for both edges).
const (
	cdnBenchSegBytes   = 1 << 20         // 1 MB segments
	cdnBenchCachedSegs = 8               // segments the throughput clients share
	cdnBenchRounds     = 5               // uncached segments per edge for time to first byte
	cdnBenchWaiters    = 100             // concurrent requests per uncached segment
	cdnBenchFor        = 3 * time.Second // per run; 2 runs per edge and object kind
	cdnBenchSegConc    = 16              // concurrent clients for segments
	cdnBenchPlConc     = 32              // concurrent clients for playlists
	// The slow origin: this long before its response headers, then the
	// body in 64 KiB pieces every cdnBenchPace (1 MB in about 400 ms).
	cdnBenchOriginDelay = 100 * time.Millisecond
	cdnBenchPace        = 25 * time.Millisecond
)

type cdnThroughput struct {
	ReqPerSec, Gbps float64
	P99             time.Duration
	Errors          int
	CPUPerReq       time.Duration // the edge's CPU time (all its processes) per request served
}

type cdnEdgeRow struct {
	Edge      string
	Segments  cdnThroughput
	Playlists cdnThroughput
	TTFB      latency // first body byte, 100 concurrent requests for an uncached segment
	Full      latency // whole body, same requests
	Fetches   float64 // origin fetches per uncached segment
}

// BenchmarkCDNEdge compares a `portier cdn-edge` process with nginx
// running deploy/nginx/cdn-edge.conf (proxy_cache, proxy_cache_lock,
// secure_link; 2 worker processes on this 2-core machine), both in front
// of the same real `portier hls-origin` through a slow origin link in the
// benchmark process (100 ms to response headers, then 1 MB over ~400 ms),
// with the same Go load client and signed URLs:
//
//  1. cached throughput: 16 clients GET 8 cached 1 MB segments round robin,
//     then 32 clients GET the (small) media playlist, 3 s per run, two runs
//     per edge in ABBA order: requests/s, Gbit/s, p99;
//     A third edge, portier-disk, is `portier cdn-edge` with a 2 MB memory
//     tier and a disk tier, so that its cached segments come from files;
//  2. coalescing: 100 concurrent requests for one uncached segment, 5
//     segments per edge: time to the first body byte and to the whole
//     body, p50/p99, and origin fetches per segment; the origin's own
//     first byte and whole body for one request are the reference.
func BenchmarkCDNEdge(b *testing.B) {
	var once sync.Once
	for range b.N {
		once.Do(func() { runCDNEdgeBench(b) })
	}
	b.ReportMetric(0, "ns/op")
}

func runCDNEdgeBench(b *testing.B) {
	peers.RequireTool(b, "nginx")
	cp := startControlPlane(b, "")
	originAddr := peers.FreeAddr(b)
	op := startPortier(b, "hls-origin", nil, "hls-origin", "--name", "hls-bench", "--control", cp.URL, "--cluster-token", cp.ClusterToken,
		"--http-addr", originAddr, "--storage", b.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitHTTPOK(ctx, "http://"+originAddr+"/healthz", op); err != nil {
		b.Fatalf("hls-origin: %v\n%s", err, op.logTail(4000))
	}
	slow := newSlowOrigin(b, "http://"+originAddr)

	// Stream 1: the cached segments, the uncached ones (per edge) and the
	// media playlist listing them all.
	cred := hlscred.Sign(cp.ClusterToken, hlscred.Cred{StreamID: 1, TaskID: 1, Epoch: 1})
	seg := make([]byte, cdnBenchSegBytes)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range seg {
		seg[i] = byte(r.Uint32())
	}
	var names []string
	pl := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
	for i := range cdnBenchCachedSegs + 2*cdnBenchRounds + 1 {
		name := fmt.Sprintf("v0/%d.ts", i)
		seg[0] = byte(i) // every segment differs
		putObject(b, "http://"+originAddr+"/hls/s/1/"+name, cred, seg)
		names = append(names, name)
		pl += "#EXTINF:2.000,\n" + strings.TrimPrefix(name, "v0/") + "\n"
	}
	putObject(b, "http://"+originAddr+"/hls/s/1/v0/index.m3u8", cred, []byte(pl))
	q := "?" + hlssign.Sign(hlssign.Secret(cp.ClusterToken), hlssign.StreamPrefix(1), time.Now().Add(time.Hour)).Encode()

	edgeAddr := peers.FreeAddr(b)
	ep := startPortier(b, "cdn-edge", nil, "cdn-edge", "--name", "edge-bench", "--control", cp.URL, "--cluster-token", cp.ClusterToken,
		"--http-addr", edgeAddr, "--origin", slow.URL(), "--cache-bytes", fmt.Sprint(1<<30), "--log-level", "warn")
	if err := waitHTTPOK(ctx, "http://"+edgeAddr+"/healthz", ep); err != nil {
		b.Fatalf("cdn-edge: %v\n%s", err, ep.logTail(4000))
	}
	// The same edge with a 2 MB memory tier in front of a disk tier: the
	// cached segments come from files (sendfile), as nginx's do.
	diskAddr := peers.FreeAddr(b)
	dp := startPortier(b, "cdn-edge-disk", nil, "cdn-edge", "--name", "edge-bench-disk", "--control", cp.URL, "--cluster-token", cp.ClusterToken,
		"--http-addr", diskAddr, "--origin", slow.URL(), "--cache-bytes", fmt.Sprint(2<<20), "--max-object-bytes", fmt.Sprint(1<<20+1),
		"--disk-cache-dir", b.TempDir(), "--log-level", "warn")
	if err := waitHTTPOK(ctx, "http://"+diskAddr+"/healthz", dp); err != nil {
		b.Fatalf("cdn-edge (disk): %v\n%s", err, dp.logTail(4000))
	}
	ng := peers.NginxCDNEdge(b, peers.NginxEdgeOpts{Origin: slow.Addr(), ClusterToken: cp.ClusterToken,
		PlaySecret: hlssign.Secret(cp.ClusterToken), Workers: 2})

	// The origin's own time to first byte and whole body, one request.
	ref := make([]time.Duration, 2)
	{
		t0 := time.Now()
		first, full, err := timedGet(http.DefaultClient, slow.URL()+"/hls/s/1/"+names[len(names)-1], cp.ClusterToken)
		if err != nil {
			b.Fatal(err)
		}
		ref[0], ref[1] = first.Sub(t0), full.Sub(t0)
	}

	edges := []struct {
		name, addr string
		pid        int
	}{{"portier", edgeAddr, ep.PID()}, {"nginx", ng.HTTPAddr, ng.Proc.PID()}, {"portier-disk", diskAddr, dp.PID()}}
	rows := map[string]cdnEdgeRow{}
	cached := map[string][]string{}
	for _, e := range edges {
		base := "http://" + e.addr + "/hls/s/1/"
		for j := range cdnBenchCachedSegs {
			u := base + names[j] + q
			if _, _, err := timedGet(http.DefaultClient, u, ""); err != nil { // warm
				b.Fatalf("%s warm-up: %v", e.name, err)
			}
			cached[e.name] = append(cached[e.name], u)
		}
	}
	// Cached throughput in ABCCBA order, so that load from outside the
	// benchmark drifting during the run weighs on all alike; each figure
	// is the mean of its two runs.
	abba := []int{0, 1, 2, 2, 1, 0}
	segs, pls := map[string][]cdnThroughput{}, map[string][]cdnThroughput{}
	for _, k := range abba {
		e := edges[k]
		segs[e.name] = append(segs[e.name], cdnLoad(cached[e.name], cdnBenchSegConc, cdnBenchSegBytes, e.pid))
	}
	for _, k := range abba {
		e := edges[k]
		pls[e.name] = append(pls[e.name], cdnLoad([]string{"http://" + e.addr + "/hls/s/1/v0/index.m3u8" + q}, cdnBenchPlConc, len(pl), e.pid))
	}
	for i, e := range edges {
		row := cdnEdgeRow{Edge: e.name, Segments: meanThroughput(segs[e.name]), Playlists: meanThroughput(pls[e.name])}
		if e.name == "portier-disk" { // the same fill path as "portier": no second coalescing run
			rows[e.name] = row
			continue
		}
		var firsts, fulls []time.Duration
		before := slow.fetches()
		for k := range cdnBenchRounds {
			u := "http://" + e.addr + "/hls/s/1/" + names[cdnBenchCachedSegs+i*cdnBenchRounds+k] + q
			f, w := coalescedGets(b, u, cdnBenchWaiters)
			firsts, fulls = append(firsts, f...), append(fulls, w...)
		}
		row.Fetches = float64(slow.fetches()-before) / cdnBenchRounds
		row.TTFB, row.Full = percentiles(firsts), percentiles(fulls)
		rows[e.name] = row
	}
	ours, theirs, disk := rows["portier"], rows["nginx"], rows["portier-disk"]
	for _, r := range []cdnEdgeRow{ours, theirs, disk} {
		p := r.Edge + "-"
		b.ReportMetric(r.Segments.ReqPerSec, p+"seg-req/s")
		b.ReportMetric(r.Segments.Gbps, p+"seg-Gbit/s")
		b.ReportMetric(r.Playlists.ReqPerSec, p+"playlist-req/s")
		b.ReportMetric(ms(r.TTFB.P50), p+"ttfb-p50-ms")
		b.ReportMetric(ms(r.TTFB.P99), p+"ttfb-p99-ms")
		b.ReportMetric(r.Fetches, p+"origin-fetches/seg")
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	b.ReportMetric(ratio(ours.Segments.ReqPerSec, theirs.Segments.ReqPerSec), "seg-req/s-ratio")
	b.ReportMetric(ratio(ours.Playlists.ReqPerSec, theirs.Playlists.ReqPerSec), "playlist-req/s-ratio")
	b.ReportMetric(ratio(float64(theirs.TTFB.P50), float64(ours.TTFB.P50)), "ttfb-p50-speedup")
	b.ReportMetric(ratio(float64(ours.Segments.CPUPerReq), float64(theirs.Segments.CPUPerReq)), "seg-cpu-ratio")
	b.ReportMetric(ratio(float64(ours.Playlists.CPUPerReq), float64(theirs.Playlists.CPUPerReq)), "playlist-cpu-ratio")

	var sb strings.Builder
	fmt.Fprintf(&sb, "\nCDN edge, %d clients × 1 MB cached segments, %d clients × %d-byte playlist, 2 × %v each; %d concurrent requests × %d uncached segments:\n",
		cdnBenchSegConc, cdnBenchPlConc, len(pl), cdnBenchFor, cdnBenchWaiters, cdnBenchRounds)
	fmt.Fprintf(&sb, "%-12s %10s %9s %9s %11s %12s %9s %11s %11s %11s %11s %11s %9s\n", "edge", "seg req/s", "Gbit/s", "p99 ms", "cpu ms/seg",
		"playlist/s", "p99 ms", "cpu us/pl", "ttfb p50", "ttfb p99", "full p50", "full p99", "fetches")
	for _, r := range []cdnEdgeRow{ours, theirs, disk} {
		fmt.Fprintf(&sb, "%-12s %10.0f %9.2f %9.1f %11.2f %12.0f %9.1f %11.0f %11.1f %11.1f %11.1f %11.1f %9.1f\n", r.Edge,
			r.Segments.ReqPerSec, r.Segments.Gbps, ms(r.Segments.P99), ms(r.Segments.CPUPerReq), r.Playlists.ReqPerSec, ms(r.Playlists.P99),
			float64(r.Playlists.CPUPerReq.Microseconds()), ms(r.TTFB.P50), ms(r.TTFB.P99), ms(r.Full.P50), ms(r.Full.P99), r.Fetches)
	}
	fmt.Fprintf(&sb, "origin alone (one request): first byte %.1f ms, whole body %.1f ms\n", ms(ref[0]), ms(ref[1]))
	fmt.Fprintf(&sb, "portier/nginx: segments %.2f× (CPU per segment %.2f×), playlists %.2f× (CPU per playlist %.2f×); nginx/portier time to first byte p50 %.1f×\n",
		ratio(ours.Segments.ReqPerSec, theirs.Segments.ReqPerSec), ratio(float64(ours.Segments.CPUPerReq), float64(theirs.Segments.CPUPerReq)),
		ratio(ours.Playlists.ReqPerSec, theirs.Playlists.ReqPerSec), ratio(float64(ours.Playlists.CPUPerReq), float64(theirs.Playlists.CPUPerReq)),
		ratio(float64(theirs.TTFB.P50), float64(ours.TTFB.P50)))
	fmt.Fprintf(&sb, "portier-disk/nginx: segments %.2f× (CPU per segment %.2f×)\n",
		ratio(disk.Segments.ReqPerSec, theirs.Segments.ReqPerSec), ratio(float64(disk.Segments.CPUPerReq), float64(theirs.Segments.CPUPerReq)))
	for _, r := range []cdnEdgeRow{ours, theirs, disk} {
		if r.Segments.Errors+r.Playlists.Errors > 0 {
			fmt.Fprintf(&sb, "%s: %d failed requests\n", r.Edge, r.Segments.Errors+r.Playlists.Errors)
		}
	}
	fmt.Fprint(os.Stdout, sb.String())
}

// meanThroughput averages runs (p99: the worse one; errors: the sum).
func meanThroughput(runs []cdnThroughput) cdnThroughput {
	var m cdnThroughput
	for _, r := range runs {
		m.ReqPerSec += r.ReqPerSec / float64(len(runs))
		m.Gbps += r.Gbps / float64(len(runs))
		m.P99 = max(m.P99, r.P99)
		m.CPUPerReq += r.CPUPerReq / time.Duration(len(runs))
		m.Errors += r.Errors
	}
	return m
}

// putObject PUTs body to url with a task credential.
func putObject(tb testing.TB, url, cred string, body []byte) {
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		tb.Fatalf("PUT %s: %s", url, res.Status)
	}
}

// timedGet GETs url and returns when its first body byte and its whole
// body arrived.
func timedGet(c *http.Client, url, token string) (first, full time.Time, err error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return first, full, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return first, full, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(res.Body, one); err != nil {
		return first, full, err
	}
	first = time.Now()
	_, err = io.Copy(io.Discard, res.Body)
	return first, time.Now(), err
}

// coalescedGets starts n GETs of url at once (connections opened first)
// and returns each one's time to first body byte and to the whole body.
func coalescedGets(tb testing.TB, url string, n int) (firsts, fulls []time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// Open n connections ahead (a HEAD of the healthz-free 403 path would
	// count as a request: use OPTIONS, which both edges answer locally).
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodOptions, url, nil)
			if res, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	var mu sync.Mutex
	start := make(chan struct{})
	t0 := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			first, full, err := timedGet(c, url, "")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				tb.Errorf("coalesced GET: %v", err)
				return
			}
			firsts, fulls = append(firsts, first.Sub(t0)), append(fulls, full.Sub(t0))
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	return firsts, fulls
}

// cdnLoad runs conc clients GETting urls round robin for cdnBenchFor.
func cdnLoad(urls []string, conc, size, pid int) cdnThroughput {
	cpu0, _ := ReadProcUsage(pid)
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		mu     sync.Mutex
		lats   []time.Duration
		bytesN int64
		errsN  int
		wg     sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(cdnBenchFor)
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			var n int64
			e := 0
			for i := g; time.Now().Before(end); i++ {
				t0 := time.Now()
				res, err := c.Get(urls[i%len(urls)])
				if err != nil {
					e++
					continue
				}
				k, err := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK || int(k) != size {
					e++
					continue
				}
				my = append(my, time.Since(t0))
				n += k
			}
			mu.Lock()
			lats, bytesN, errsN = append(lats, my...), bytesN+n, errsN+e
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	cpu1, _ := ReadProcUsage(pid)
	t := cdnThroughput{ReqPerSec: float64(len(lats)) / wall, Gbps: float64(bytesN) * 8 / 1e9 / wall, P99: percentiles(lats).P99, Errors: errsN}
	if len(lats) > 0 {
		t.CPUPerReq = time.Duration((cpu1.CPUSeconds - cpu0.CPUSeconds) / float64(len(lats)) * 1e9)
	}
	return t
}

// slowOrigin sits between the edges and the real origin: segment
// responses wait cdnBenchOriginDelay for their headers, then come in
// 64 KiB pieces every cdnBenchPace; it counts segment fetches.
type slowOrigin struct {
	srv    *http.Server
	addr   string
	target string
	mu     sync.Mutex
	n      int
}

func newSlowOrigin(tb testing.TB, target string) *slowOrigin {
	s := &slowOrigin{target: target, addr: peers.FreeAddr(tb)}
	s.srv = &http.Server{Addr: s.addr, Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.ListenAndServe() }()
	tb.Cleanup(func() { _ = s.srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := peers.WaitTCP(ctx, s.addr, nil); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *slowOrigin) URL() string  { return "http://" + s.addr }
func (s *slowOrigin) Addr() string { return s.addr }
func (s *slowOrigin) fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *slowOrigin) serve(w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, s.target+r.URL.RequestURI(), nil)
	req.Header = r.Header.Clone()
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	segment := strings.HasSuffix(r.URL.Path, ".ts")
	if segment {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		time.Sleep(cdnBenchOriginDelay) // the simulated link's latency, not a wait for a condition
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	if !segment {
		_, _ = io.Copy(w, res.Body)
		return
	}
	buf := make([]byte, 64<<10)
	fl := w.(http.Flusher)
	for {
		n, err := io.ReadFull(res.Body, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			fl.Flush()
		}
		if err != nil {
			return
		}
		time.Sleep(cdnBenchPace) // the simulated link's bandwidth
	}
}
