// Package contract replays the hook requests of SRS, nginx-rtmp and MediaMTX
// (as each server documents and sends them) against the control plane and
// checks the replies have each server's allow/deny semantics, and that
// repeated or lost hooks never leave a wrong live state, on SQLite and
// Postgres.
package contract

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/portiertest"
)

const token = "contract-cluster-token"

type env struct {
	t      *testing.T
	ts     *httptest.Server
	store  *models.Store
	stream *models.Stream
	key    string
}

type envOpts struct {
	allow map[string][]netip.Prefix
	ttl   map[string]time.Duration
	hb    time.Duration
	start bool // start the background reaper
}

func newEnv(t *testing.T, st *models.Store, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	cp := portiertest.Start(t, portiertest.Options{Store: st, NoBackground: !o.start, Params: portier.Params{
		ClusterToken: token,
		Hooks:        portier.HookParams{Allow: o.allow, OriginTTL: o.ttl},
		Live:         portier.LiveParams{HeartbeatInterval: o.hb},
	}})
	ts := cp.HTTP
	u, err := st.CreateUser(ctx, "op", "a-long-password-1", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.CreateStream(ctx, "live", "livestream", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ts: ts, store: st, stream: s, key: s.PublishKey}
}

// forEachStore runs fn on a fresh SQLite and a fresh Postgres store.
func forEachStore(t *testing.T, o envOpts, fn func(t *testing.T, e *env)) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) { fn(t, newEnv(t, n.Store, o)) })
	}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("reply is not JSON: %d %q", r.status, r.body)
	}
	return m
}

// do sends one request; the client never follows redirects (nginx-rtmp
// reads the 3xx itself).
func (e *env) do(method, path, contentType, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) live() bool {
	e.t.Helper()
	s, err := e.store.StreamByID(context.Background(), e.stream.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Live
}

func (e *env) origins() []string {
	e.t.Helper()
	os, err := e.store.StreamOrigins(context.Background(), e.stream.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, o := range os {
		out = append(out, o.NodeName)
	}
	return out
}

func (e *env) wantLive(want bool, why string) {
	e.t.Helper()
	if got := e.live(); got != want {
		e.t.Fatalf("%s: live = %v, want %v (origins %v)", why, got, want, e.origins())
	}
}

func withToken(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "token=" + url.QueryEscape(token)
}
