package portier

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models/modelstest"
)

// `portier run` serves its relay's API under /relay/ through the control
// plane: admins and the cluster token only (not loopback, not viewers).
func TestRelayMountAuth(t *testing.T) {
	e := newAPIEnv(t, modelstest.Stores(t)[0].Store)
	e.srv.p.ClusterToken = "cluster-secret"
	rel, err := relay.New(relay.Params{Role: relay.RoleEdge, Name: "edge", RTMPAddr: "127.0.0.1:0",
		StaticOrigins: []string{"127.0.0.1:1"}, APIAuth: func(h http.Handler) http.Handler { return h }})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.MountRelay(rel.HTTPHandler())
	hs := httptest.NewServer(e.h)
	defer hs.Close()
	for _, tc := range []struct {
		name, path, bearer string
		want               int
	}{
		{"anonymous", "/relay/api/v1/streams", "", http.StatusUnauthorized},
		{"wrong token", "/relay/api/v1/streams", "guess", http.StatusUnauthorized},
		{"cluster token", "/relay/api/v1/streams", "cluster-secret", http.StatusOK},
		{"admin API token", "/relay/api/v1/streams", e.tokens["admin"], http.StatusOK},
		{"admin token without the admin scope", "/relay/api/v1/streams", e.tokens["admin-rw"], http.StatusOK},
		{"operator token", "/relay/api/v1/streams", e.tokens["op1"], http.StatusForbidden},
		{"viewer token", "/relay/api/v1/streams", e.tokens["viewer"], http.StatusForbidden},
		{"metrics stay open", "/relay/metrics", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, hs.URL+tc.path, nil)
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
