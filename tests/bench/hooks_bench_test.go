package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portier/portier/models/modelstest"
)

// Hook benchmark shape and the targets.
const (
	hookDuration     = 5 * time.Second
	hookMaxClients   = 64
	hookStreams      = 64
	hookTargetRate   = 5000 // decisions/s
	hookTargetP99    = 5 * time.Millisecond
	hookMaxLatencies = 2_000_000 // bound on recorded samples
)

// hookRow is one line of the hook table.
type hookRow struct {
	DB, Endpoint  string
	Clients       int
	Streams       int
	Decisions     int
	Errors        int
	Rate          float64
	P50, P99, Max time.Duration
	FirstError    string
}

// BenchmarkHooks measures publish-authorisation decisions per second and
// their p50/p99 latency over HTTP on loopback: 16 and 64 concurrent keep-alive
// clients in this process for 5 s each against a `portier serve` process, on
// SQLite (a file in a temporary directory) and on Postgres
// (PORTIER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test,
// in a fresh schema), through the native node API
// (POST /internal/v1/publish/authorize, JSON, cluster token) and nginx-rtmp's
// on_publish (POST /hooks/nginx-rtmp, form, ?token=). Every request is an
// allowed publish, the full decision path (lookup, key check, audit event,
// mark live, publish count): client i publishes stream i of 64 (as
// encoders connecting to a cluster do), and in the -1stream rows every
// client publishes the same stream (each decision then waits for the
// previous one's write to that stream's row).
func BenchmarkHooks(b *testing.B) {
	var mu sync.Mutex
	var rows []hookRow
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			mu.Lock()
			done := slices.ContainsFunc(rows, func(r hookRow) bool { return r.DB == db })
			mu.Unlock()
			if done { // the framework may call again with a larger b.N
				return
			}
			dsn := ""
			if db == "postgres" {
				var ok bool
				if dsn, ok = modelstest.Schema(b); !ok {
					b.Fatalf("Postgres at %s is unreachable: the hook benchmark needs it (set PORTIER_TEST_POSTGRES_URL)", modelstest.PostgresURL())
				}
			}
			cp := startControlPlane(b, dsn)
			keys := make([]string, hookStreams)
			for i := range keys {
				keys[i] = cp.createStream(b, "live", fmt.Sprintf("bench%d", i))
			}
			for _, ep := range hookEndpoints(cp, keys) {
				for _, clients := range hookConcurrency {
					b.Run(fmt.Sprintf("%s/c%d", ep.name, clients), func(b *testing.B) {
						row := runHookLoad(b, cp, ep, clients)
						row.DB = db
						b.ReportMetric(row.Rate, "decisions/s")
						b.ReportMetric(float64(row.P50.Microseconds())/1000, "p50-ms")
						b.ReportMetric(float64(row.P99.Microseconds())/1000, "p99-ms")
						b.ReportMetric(0, "ns/op")
						mu.Lock()
						rows = append(rows, row)
						mu.Unlock()
						if row.Errors > 0 {
							b.Errorf("%s %s: %d of %d requests failed (first: %s)", db, ep.name, row.Errors, row.Errors+row.Decisions, row.FirstError)
						}
					})
				}
			}
		})
	}
	fmt.Fprintf(os.Stdout, "\nPublish-authorisation hooks, %v concurrent clients, %s per row, over loopback HTTP against `portier serve`:\n%s\n",
		hookConcurrency, hookDuration, formatHookTable(rows))
}

// hookEndpoint builds one request of a dialect.
type hookEndpoint struct {
	name    string
	streams int
	req     func(ctx context.Context, client int) *http.Request // an allowed publish
}

// hookEndpoints returns the native and nginx-rtmp publish requests, each
// for the streams of keys (client i publishes stream i mod len(keys)) and
// for the first stream only (every client the same stream: every decision
// waits for the previous one's write on that stream's row).
func hookEndpoints(cp *controlPlane, keys []string) []hookEndpoint {
	native := make([][]byte, len(keys))
	form := make([]string, len(keys))
	for i, key := range keys {
		name := fmt.Sprintf("bench%d", i)
		native[i], _ = json.Marshal(map[string]string{
			"node": "origin-1", "app": "live", "name": name, "query": "key=" + key,
			"addr": "127.0.0.1:50000", "protocol": "rtmp",
		})
		form[i] = url.Values{
			"call": {"publish"}, "app": {"live"}, "name": {name}, "type": {"live"},
			"addr": {"127.0.0.1"}, "clientid": {"1"}, "tcurl": {"rtmp://127.0.0.1/live"},
			"flashver": {"FMLE/3.0"}, "key": {key},
		}.Encode()
	}
	nginxURL := cp.URL + "/hooks/nginx-rtmp?node=nginx-1&token=" + url.QueryEscape(cp.ClusterToken)
	nativeReq := func(ctx context.Context, i int) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, cp.URL+"/internal/v1/publish/authorize", bytes.NewReader(native[i]))
		r.Header.Set("Authorization", "Bearer "+cp.ClusterToken)
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	nginxReq := func(ctx context.Context, i int) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, nginxURL, strings.NewReader(form[i]))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	n := len(keys)
	return []hookEndpoint{
		{name: "native", streams: n, req: func(ctx context.Context, c int) *http.Request { return nativeReq(ctx, c%n) }},
		{name: "nginx-rtmp", streams: n, req: func(ctx context.Context, c int) *http.Request { return nginxReq(ctx, c%n) }},
		{name: "native-1stream", streams: 1, req: func(ctx context.Context, _ int) *http.Request { return nativeReq(ctx, 0) }},
		{name: "nginx-rtmp-1stream", streams: 1, req: func(ctx context.Context, _ int) *http.Request { return nginxReq(ctx, 0) }},
	}
}

// hookConcurrency are the numbers of concurrent clients each endpoint is
// measured with.
var hookConcurrency = []int{4, 8, 16, hookMaxClients}

// runHookLoad runs hookClients clients against ep for hookDuration.
func runHookLoad(tb testing.TB, cp *controlPlane, ep hookEndpoint, hookClients int) hookRow {
	tb.Helper()
	row := hookRow{Endpoint: ep.name, Clients: hookClients, Streams: ep.streams}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: hookClients, MaxIdleConnsPerHost: hookClients, IdleConnTimeout: time.Minute},
		Timeout:   10 * time.Second,
	}
	defer client.CloseIdleConnections()
	// Warm up: connections open, statements prepared, the stream live.
	for i := range hookClients {
		if status, err := doHook(client, ep.req(context.Background(), i)); err != nil || status != http.StatusOK {
			tb.Fatalf("%s warm-up: status %d, %v", ep.name, status, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), hookDuration)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	start := time.Now()
	for c := range hookClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			var errs int
			var first string
			for ctx.Err() == nil && len(local) < hookMaxLatencies/hookClients {
				t0 := time.Now()
				status, err := doHook(client, ep.req(ctx, c))
				el := time.Since(t0)
				if ctx.Err() != nil {
					break // cut off by the end of the run: not a decision
				}
				if err != nil || status != http.StatusOK {
					errs++
					if first == "" {
						first = fmt.Sprintf("status %d, %v", status, err)
					}
					continue
				}
				local = append(local, el)
			}
			mu.Lock()
			lats = append(lats, local...)
			row.Errors += errs
			if row.FirstError == "" {
				row.FirstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	row.Decisions = len(lats)
	if n := len(lats); n > 0 {
		row.Rate = float64(n) / elapsed.Seconds()
		row.P50 = lats[n/2]
		row.P99 = lats[n*99/100]
		row.Max = lats[n-1]
	}
	return row
}

func doHook(client *http.Client, req *http.Request) (int, error) {
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	return res.StatusCode, nil
}

func formatHookTable(rows []hookRow) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "database\tendpoint\tclients\tstreams\tdecisions\terrors\tdecisions/s\tvs 5000/s\tp50 ms\tp99 ms\tp99 vs 5 ms\tmax ms\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", r.DB, r.Endpoint, r.Clients, r.Streams, r.Decisions, r.Errors,
			r.Rate, r.Rate/hookTargetRate, ms(r.P50), ms(r.P99), ms(r.P99)/ms(hookTargetP99), ms(r.Max))
	}
	w.Flush()
	return sb.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
