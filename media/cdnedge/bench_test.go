package cdnedge

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkCachedHit measures a cache hit through a real HTTP server and
// client on loopback: a small playlist and a 1 MB segment.
func BenchmarkCachedHit(b *testing.B) {
	o := newFakeOrigin(&testing.T{})
	defer o.srv.Close()
	for _, c := range []struct {
		name, path string
		size       int
	}{{"playlist", "/hls/s/7/720p/index.m3u8", 450}, {"segment-1MB", "/hls/s/7/720p/1.ts", 1 << 20}} {
		o.put(c.path, segment(c.size, 1))
		b.Run(c.name, func(b *testing.B) {
			te := newTestEdge(&testing.T{}, o, func(p *Params) { p.StaleFor = 1 << 40 })
			u := te.signed(c.path, "")
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetBytes(int64(c.size))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Get(u)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}
