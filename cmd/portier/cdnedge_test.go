package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Bad cdn-edge options are refused with a message naming the option and
// the fix.
func TestCDNEdgeConfigErrors(t *testing.T) {
	clearPortierEnv(t)
	base := []string{"--control", "http://c:8080", "--cluster-token", "t"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--origin is required"},
		{[]string{"--origin", "ftp://o"}, "--origin"},
		{[]string{"--origin", "http://o:8090,o2:8090"}, "--origin"},
		{[]string{"--origin", "http://o:8090", "--cache-bytes", "0"}, "--cache-bytes"},
		{[]string{"--origin", "http://o:8090", "--capacity", "0"}, "--capacity"},
		{[]string{"--origin", "http://o:8090", "--cache-bytes", "100", "--max-object-bytes", "200"}, "--max-object-bytes"},
		{[]string{"--origin", "http://o:8090", "--cors-allow-origins", "player.example"}, "--cors-allow-origins"},
		{[]string{"--origin", "http://o:8090", "--stale-for", "0s"}, "--stale-for"},
		{[]string{"--origin", "http://o:8090", "--disk-cache-dir", "/tmp/x", "--disk-cache-bytes", "0"}, "--disk-cache-bytes"},
		{[]string{"--origin", "http://o:8090", "--advertise-http-addr", ":8095"}, "--advertise-http-addr"},
	} {
		_, err := loadConfig[cdnEdgeConfig]("cdn-edge", append(append([]string{}, base...), tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cdn-edge %q: err %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := loadConfig[cdnEdgeConfig]("cdn-edge", []string{"--origin", "http://o:8090"}); err == nil ||
		!strings.Contains(err.Error(), "--control") || !strings.Contains(err.Error(), "--cluster-token") {
		t.Errorf("missing control and token: %v", err)
	}
	c, err := loadConfig[cdnEdgeConfig]("cdn-edge", append(base, "--origin", " http://a:8090, http://b:8090 ", "--cors-allow-origins", "https://p.example,http://q.example:8000"))
	if err != nil || len(c.origins()) != 2 || c.origins()[1] != "http://b:8090" {
		t.Fatalf("two origins: %v %v", c, err)
	}
}

// `portier run` sends viewers' requests under /hls/s/ (no Authorization)
// to the edge, and uploads and the cluster token's reads to the origin.
func TestAllInOneHLSDispatch(t *testing.T) {
	tag := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(name)) })
	}
	h := allInOneHandler(tag("control"), tag("relay"), tag("origin"), tag("edge"))
	for _, tc := range []struct {
		method, path, auth, want string
	}{
		{http.MethodGet, "/hls/s/1/v0/1.ts?exp=1&sig=x", "", "edge"},
		{http.MethodHead, "/hls/s/1/master.m3u8", "", "edge"},
		{http.MethodOptions, "/hls/s/1/master.m3u8", "", "edge"},
		{http.MethodGet, "/hls/s/1/v0/1.ts", "Bearer token", "origin"},
		{http.MethodPut, "/hls/s/1/v0/1.ts", "Bearer cred", "origin"},
		{http.MethodPut, "/hls/s/1/v0/1.ts", "", "origin"},
		{http.MethodDelete, "/hls/s/1/v0/1.ts", "", "origin"},
		{http.MethodGet, "/live/x.flv", "", "relay"},
		{http.MethodGet, "/api/v1/streams", "", "control"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Body.String() != tc.want {
			t.Errorf("%s %s (auth %q): %s, want %s", tc.method, tc.path, tc.auth, rec.Body.String(), tc.want)
		}
	}
}
