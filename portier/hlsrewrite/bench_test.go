package hlsrewrite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
)

// BenchmarkRewriterHTTP measures one replica serving media playlists over
// loopback HTTP to 1000 concurrent viewers (goroutines with keep-alive
// connections), each reload a real rewrite of a 6-segment playlist over
// 3 edges across 20 streams × 2 renditions; it reports playlists/s and
// the p50/p99 latency. Run:
//
//	go test -run '^$' -bench RewriterHTTP -benchtime 20000x ./portier/hlsrewrite/
func BenchmarkRewriterHTTP(b *testing.B) {
	_, srv := benchRewriter(b)
	tr := &http.Transport{MaxIdleConns: 2000, MaxIdleConnsPerHost: 2000}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const viewers = 1000
	b.SetParallelism(max(viewers/runtime.GOMAXPROCS(0), 1))
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		i := 0
		for pb.Next() {
			i++
			u := fmt.Sprintf("%s/hls/live/s%d/v%d/index.m3u8", srv.URL, i%20, i%2)
			t0 := time.Now()
			resp, err := client.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("%s: %s", u, resp.Status)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "playlists/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkRewriterViewers is the open-loop view of the same replica:
// 1000 viewers, each reloading a media playlist every 100, 200 or 500 ms
// (10,000, 5,000 or 2,000 playlists/s offered; 10,000/s is 20,000
// viewers at a 2 s target duration), over loopback HTTP; it reports the
// rate served and p50/p99 latency. b.N is the total number of reloads. Run:
//
//	go test -run '^$' -bench RewriterViewers -benchtime 50000x ./portier/hlsrewrite/
func BenchmarkRewriterViewers(b *testing.B) {
	for _, every := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
		b.Run(fmt.Sprintf("offered=%d/s", int(1000*time.Second/every)), func(b *testing.B) { benchViewers(b, every) })
	}
}

func benchViewers(b *testing.B, every time.Duration) {
	_, srv := benchRewriter(b)
	tr := &http.Transport{MaxIdleConns: 2000, MaxIdleConnsPerHost: 2000}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const viewers = 1000
	per := max(b.N/viewers, 1)
	lat := make([][]time.Duration, viewers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for v := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := every * time.Duration(v) / viewers // spread over the interval
			for k := range per {
				time.Sleep(time.Until(start.Add(off + every*time.Duration(k)))) // the viewer's reload schedule
				u := fmt.Sprintf("%s/hls/live/s%d/v%d/index.m3u8", srv.URL, v%20, v%2)
				t0 := time.Now()
				resp, err := client.Get(u)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[v] = append(lat[v], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/el.Seconds(), "playlists/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// benchRewriter is a rewriter over 20 streams and 3 edges, served on loopback.
func benchRewriter(b *testing.B) (*Rewriter, *httptest.Server) {
	dir := &fakeDir{streams: map[string]Stream{}}
	for i := range 20 {
		dir.streams[fmt.Sprintf("live/s%d", i)] = Stream{ID: int64(i + 1), Public: true}
	}
	for i := range 3 {
		dir.edges = append(dir.edges, Edge{Name: fmt.Sprintf("edge-%d", i), BaseURL: fmt.Sprintf("http://edge%d.test:80", i), CapacityMbps: 1000, LastHeartbeat: time.Now()})
	}
	rw, err := New(Params{Directory: dir, Origin: &fakeOrigin{n: 6}, Secret: hlssign.Secret("tok"), NoProbe: true, AliveWindow: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if err := rw.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rw)
	b.Cleanup(srv.Close)
	return rw, srv
}

// BenchmarkRewriteMedia is the rewrite alone (no HTTP): one media
// playlist of 6 segments for a known stream.
func BenchmarkRewriteMedia(b *testing.B) {
	dir := &fakeDir{streams: map[string]Stream{"live/cam": {ID: 7, Public: true}}}
	for i := range 3 {
		dir.edges = append(dir.edges, Edge{Name: fmt.Sprintf("edge-%d", i), BaseURL: fmt.Sprintf("http://edge%d.test:80", i), CapacityMbps: 1000, LastHeartbeat: time.Now()})
	}
	o := &fakeOrigin{n: 6}
	rw, _ := New(Params{Directory: dir, Origin: o, Secret: hlssign.Secret("tok"), NoProbe: true, AliveWindow: time.Hour})
	_ = rw.Refresh(context.Background())
	body, _ := o.Fetch(context.Background(), "/hls/s/7/v0/index.m3u8")
	set := rw.edges.get()
	b.ReportAllocs()
	for b.Loop() {
		// A fresh body each time: the rewrite itself, not its cache.
		if _, err := rw.rewriteMedia(slices.Clone(body), 7, "/hls/s/7/v0/index.m3u8", set.gen, set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriterServeHTTP is the handler without sockets: 1000
// goroutines call ServeHTTP with a recorder (the replica's own cost per
// playlist, without the kernel's TCP and the load client on the same cores).
func BenchmarkRewriterServeHTTP(b *testing.B) {
	rw, _ := benchRewriter(b)
	b.SetParallelism(max(1000/runtime.GOMAXPROCS(0), 1))
	b.ReportAllocs()
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		i := 0
		for pb.Next() {
			i++
			req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/hls/live/s%d/v%d/index.m3u8", i%20, i%2), nil)
			w := httptest.NewRecorder()
			t0 := time.Now()
			rw.ServeHTTP(w, req)
			mine = append(mine, time.Since(t0))
			if w.Code != 200 {
				b.Errorf("%d", w.Code)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	el := time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "playlists/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
