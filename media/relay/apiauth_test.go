package relay

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The relay API shows publishers' addresses: only the cluster token opens
// it. Metrics and probes stay open.
func TestRelayAPINeedsClusterToken(t *testing.T) {
	hs := httptest.NewServer(&allowAll{})
	defer hs.Close()
	withToken := start(t, Params{Role: RoleOrigin, Name: "origin-1", ControlURL: hs.URL, ClusterToken: "cluster-secret"})
	noToken := start(t, Params{Role: RoleEdge, Name: "edge-1", StaticOrigins: []string{withToken.RTMPAddr().String()}})
	for _, tc := range []struct {
		name   string
		r      *Relay
		path   string
		bearer string
		want   int
	}{
		{"anonymous", withToken, "/api/v1/streams", "", http.StatusUnauthorized},
		{"wrong token", withToken, "/api/v1/streams", "guess", http.StatusUnauthorized},
		{"cluster token", withToken, "/api/v1/streams", "cluster-secret", http.StatusOK},
		{"one stream, anonymous", withToken, "/api/v1/streams/live/x", "", http.StatusUnauthorized},
		{"one stream, cluster token", withToken, "/api/v1/streams/live/x", "cluster-secret", http.StatusNotFound},
		{"relay without a token", noToken, "/api/v1/streams", "", http.StatusUnauthorized},
		{"relay without a token, empty bearer", noToken, "/api/v1/streams", " ", http.StatusUnauthorized},
		{"metrics stay open", withToken, "/metrics", "", http.StatusOK},
		{"probes stay open", withToken, "/healthz", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+tc.r.HTTPAddr().String()+tc.path, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
		})
	}
}
