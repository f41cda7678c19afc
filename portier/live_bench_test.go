package portier

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models/modelstest"
)

// BenchmarkPublishAuthorize measures native publish decisions over HTTP on
// loopback (allowed, repeated publishes: the full write path) and reports
// decisions/s and p50/p99 latency, on SQLite and Postgres.
func BenchmarkPublishAuthorize(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			st := modelstest.SQLite(b)
			if name == "postgres" {
				if st = modelstest.Postgres(b); st == nil {
					b.Skip("no Postgres")
				}
			}
			e := newLiveEnv(b, st)
			defer e.ts.Close()
			body, _ := json.Marshal(map[string]any{"node": "origin-1", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var (
				mu   sync.Mutex
				lats []time.Duration
			)
			b.SetParallelism(4)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var local []time.Duration
				for pb.Next() {
					req, _ := http.NewRequest("POST", e.ts.URL+"/internal/v1/publish/authorize", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+testToken)
					t0 := time.Now()
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					local = append(local, time.Since(t0))
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
				mu.Lock()
				lats = append(lats, local...)
				mu.Unlock()
			})
			el := time.Since(start)
			slices.Sort(lats)
			if len(lats) > 0 {
				b.ReportMetric(float64(len(lats))/el.Seconds(), "decisions/s")
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
