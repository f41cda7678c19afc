package portier

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portier/portier/models/modelstest"
)

// Clients choose methods and paths; the HTTP metrics must not make a
// series of each. 300 requests with made-up methods and random paths
// leave a handful of series, all with labels from fixed sets.
func TestHTTPMetricsLabelsBounded(t *testing.T) {
	e := newAPIEnv(t, modelstest.Stores(t)[0].Store)
	hs := httptest.NewServer(e.h)
	defer hs.Close()
	letters := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(letters[rand.IntN(len(letters))])
		}
		return b.String()
	}
	paths := []string{"/api/v1/streams/%s", "/%s", "/api/v1/%s/x", "/hls/live/%s/master.m3u8", "/static/%s.js"}
	sent := map[string]bool{} // every made-up method and path segment
	for i := range 300 {
		method := word(8)
		seg := strings.ToLower(word(12))
		sent[method], sent[seg] = true, true
		if i%3 == 0 {
			method = http.MethodGet
		}
		path := fmt.Sprintf(paths[i%len(paths)], seg)
		req, err := http.NewRequest(method, hs.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mfs, err := e.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fixedMethods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
		"DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true, "other": true}
	var series int
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "portier_http_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					if !fixedMethods[l.GetValue()] {
						t.Errorf("%s: method label %q", mf.GetName(), l.GetValue())
					}
				}
				for w := range sent {
					if strings.Contains(l.GetValue(), w) {
						t.Errorf("%s: label %s=%q carries what the client sent", mf.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	t.Logf("%d HTTP metric series after 300 requests", series)
	if series > 30 {
		t.Fatalf("%d HTTP metric series after 300 random requests, want a bounded handful", series)
	}
}
