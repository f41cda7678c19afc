package portier

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/live"
)

// fakeClock is the clock of a live test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type liveEnv struct {
	srv    *Server
	ts     *httptest.Server
	store  *models.Store
	clock  *fakeClock
	stream *models.Stream
}

const testToken = "cluster-secret"

func newLiveEnv(t testing.TB, st *models.Store) *liveEnv {
	t.Helper()
	return newLiveEnvWith(t, st, nil)
}

// newLiveEnvWith is newLiveEnv with Params changed by edit (if not nil).
func newLiveEnvWith(t testing.TB, st *models.Store, edit func(*Params)) *liveEnv {
	t.Helper()
	ctx := context.Background()
	clk := &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	p := Params{
		Store: st, ClusterToken: testToken, Logger: slog.New(slog.DiscardHandler),
		Live: LiveParams{
			HeartbeatInterval: time.Second, Now: clk.now,
			Compile: compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1935", RecordDir: t.TempDir(), HLSOriginURL: "http://127.0.0.1:8090"},
		},
	}
	if edit != nil {
		edit(&p)
	}
	srv, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	u, err := st.CreateUser(ctx, "op", "a-long-password-1", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := st.CreateStream(ctx, "live", "show", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Nodes register after the stream exists, as the database's clock
	// sees it (an older relay's "app/name" heartbeat report is attached
	// only to a stream created before the node registered).
	clk.add(time.Since(clk.now()) + time.Millisecond)
	return &liveEnv{srv: srv, ts: ts, store: st, clock: clk, stream: stream}
}

func forEachLiveStore(t *testing.T, fn func(t *testing.T, e *liveEnv)) {
	forEachLiveStoreWith(t, nil, fn)
}

func forEachLiveStoreWith(t *testing.T, edit func(*Params), fn func(t *testing.T, e *liveEnv)) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) { fn(t, newLiveEnvWith(t, n.Store, edit)) })
	}
}

// call POSTs (or GETs, with a nil body) JSON to the node API with the token.
func (e *liveEnv) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(res.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: non-JSON reply %d %q", method, path, res.StatusCode, b)
		}
	}
	return res.StatusCode, out
}

func (e *liveEnv) live(t *testing.T) bool {
	t.Helper()
	st, err := e.store.StreamByID(context.Background(), e.stream.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st.Live
}

func (e *liveEnv) register(t *testing.T, name, role string) {
	t.Helper()
	code, out := e.call(t, "POST", "/internal/v1/nodes/register", map[string]any{
		"name": name, "role": role, "rtmp_address": "127.0.0.1:1935", "http_address": "127.0.0.1:8081", "capacity": 8,
	})
	if code != 200 || out["heartbeat_interval_ms"] != float64(1000) || out["lease_ms"] != float64(5000) {
		t.Fatalf("register %s: %d %v", name, code, out)
	}
}

func (e *liveEnv) heartbeat(t *testing.T, name string, published ...string) int {
	t.Helper()
	if published == nil {
		published = []string{}
	}
	code, _ := e.call(t, "POST", "/internal/v1/nodes/"+name+"/heartbeat", map[string]any{
		"load": map[string]any{"connections": 1}, "published": published,
	})
	return code
}

func TestNativePublishDecisions(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		key := e.stream.PublishKey
		cases := []struct {
			name, query string
			status      int
			code        string
		}{
			{"show", "key=wrong", 403, live.CodeWrongKey},
			{"show", "", 403, live.CodeMissingKey},
			{"nope", "key=" + key, 404, live.CodeUnknownStream},
			{"wrong-key-as-name-0123456789", "", 404, live.CodeUnknownStream},
			{"bad/name", "", 400, live.CodeBadRequest},
		}
		for _, c := range cases {
			code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{
				"node": "origin-1", "app": "live", "name": c.name, "query": c.query, "addr": "10.0.0.1:5555", "protocol": "rtmp",
			})
			if code != c.status || out["allow"] != false || out["code"] != c.code || out["reason"] == "" {
				t.Errorf("%s?%s: %d %v, want %d %s", c.name, c.query, code, out, c.status, c.code)
			}
		}
		if e.live(t) {
			t.Fatal("denied publishes made the stream live")
		}
		code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{
			"node": "origin-1", "app": "live", "name": "show", "query": "key=" + key + "&x=1", "addr": "10.0.0.1:5555",
		})
		if code != 200 || out["allow"] != true || out["name"] != "show" || out["stream_id"] != float64(e.stream.ID) || out["takeover"] != false {
			t.Fatalf("right key: %d %v", code, out)
		}
		if !e.live(t) {
			t.Fatal("not live after an allowed publish")
		}
		// OBS style: the key as the stream name; the answer names the public stream.
		code, out = e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{
			"node": "origin-2", "app": "live", "name": key,
		})
		if code != 200 || out["name"] != "show" || out["app"] != "live" {
			t.Fatalf("key as name: %d %v", code, out)
		}
		// ... but not in another app.
		code, _ = e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-2", "app": "other", "name": key})
		if code != 404 {
			t.Fatalf("key as name in another app: %d", code)
		}
		// Done on one origin keeps it live; on the last, offline. Repeats are harmless.
		for range 2 {
			if code, _ := e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": "origin-1", "app": "live", "name": "show"}); code != 200 {
				t.Fatalf("done: %d", code)
			}
		}
		if !e.live(t) {
			t.Fatal("offline while origin-2 still holds it")
		}
		if code, _ := e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": "origin-2", "app": "live", "name": "show"}); code != 200 {
			t.Fatalf("done: %d", code)
		}
		if e.live(t) {
			t.Fatal("still live after every origin is done")
		}
		if code, _ := e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": "origin-2", "app": "live", "name": "ghost"}); code != 200 {
			t.Fatalf("done of an unknown stream must be a no-op: %d", code)
		}
		// Disabled streams are refused even with the right key.
		off := false
		if _, err := e.store.UpdateStream(context.Background(), e.stream.ID, models.StreamUpdate{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		code, out = e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-1", "app": "live", "name": "show", "query": "key=" + key})
		if code != 403 || out["code"] != live.CodeDisabled {
			t.Fatalf("disabled: %d %v", code, out)
		}
		code, _ = e.call(t, "POST", "/internal/v1/play/authorize", map[string]any{"node": "edge-1", "app": "live", "name": "show"})
		if code != 403 {
			t.Fatalf("play of a disabled stream: %d", code)
		}
		// Every decision is audited, allowed or not, with node and address, never the key.
		evs, total, err := e.store.ListAudit(context.Background(), models.AuditFilter{Action: "publish.authorize", Limit: 100})
		if err != nil || total != 9 {
			t.Fatalf("audit events: %d %v", total, err)
		}
		for _, ev := range evs {
			if bytes.Contains([]byte(ev.Object+ev.Reason+string(ev.Details)), []byte(key)) {
				t.Errorf("audit event leaks the key: %+v", ev)
			}
			if ev.Node == "" {
				t.Errorf("audit event without node: %+v", ev)
			}
		}
		st, _ := e.store.StreamByID(context.Background(), e.stream.ID)
		if st.PublishCount != 2 || st.LastPublishAt == nil {
			t.Fatalf("publish count %d", st.PublishCount)
		}
	})
}

func TestNodeAPIAuthAndValidation(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		for _, path := range []string{"/internal/v1/nodes", "/internal/v1/directory/live/show"} {
			req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
			req.Header.Set("Authorization", "Bearer wrong")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 401 || !bytes.Contains(b, []byte("cluster token")) {
				t.Errorf("%s with a wrong token: %d %s", path, res.StatusCode, b)
			}
		}
		// The node API takes the token only as a header.
		res, err := http.Get(e.ts.URL + "/internal/v1/nodes?token=" + testToken)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("query token on the node API: %d", res.StatusCode)
		}
		bad := []map[string]any{
			{"name": "", "role": "origin"},
			{"name": "a b", "role": "origin"},
			{"name": "x", "role": "king"},
			{"name": "x", "role": "origin", "rtmp_address": "nope"},
			{"name": "x", "role": "origin", "capacity": -1},
		}
		for _, b := range bad {
			if code, out := e.call(t, "POST", "/internal/v1/nodes/register", b); code != 400 || out["error"] == nil {
				t.Errorf("register %v: %d %v", b, code, out)
			}
		}
		req, _ := http.NewRequest("POST", e.ts.URL+"/internal/v1/publish/authorize", bytes.NewReader([]byte("{not json")))
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("malformed body: %d", res.StatusCode)
		}
		big := bytes.Repeat([]byte("a"), 2<<20)
		req, _ = http.NewRequest("POST", e.ts.URL+"/internal/v1/nodes/register", bytes.NewReader(append([]byte(`{"name":"`), big...)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 413 {
			t.Errorf("2 MiB body: %d", res.StatusCode)
		}
		if code := e.heartbeat(t, "ghost"); code != 404 {
			t.Errorf("heartbeat of an unregistered node: %d", code)
		}
	})
}

func TestHeartbeatReconcileAndReaper(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		e.register(t, "origin-1", "origin")
		e.register(t, "origin-2", "origin")
		e.register(t, "edge-1", "edge")
		// The control plane lost the publish (say, a hook failed): the heartbeat restores it.
		if code := e.heartbeat(t, "origin-1", "live/show", "live/unknown"); code != 200 {
			t.Fatalf("heartbeat: %d", code)
		}
		if !e.live(t) {
			t.Fatal("heartbeat did not restore the live state")
		}
		code, out := e.call(t, "GET", "/internal/v1/directory/live/show", nil)
		origins, _ := out["origins"].([]any)
		if code != 200 || len(origins) != 1 || origins[0].(map[string]any)["name"] != "origin-1" {
			t.Fatalf("directory: %d %v", code, out)
		}
		// A heartbeat that predates a fresh publish does not remove it.
		e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-2", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
		e.heartbeat(t, "origin-2")
		code, out = e.call(t, "GET", "/internal/v1/directory/live/show", nil)
		if origins, _ = out["origins"].([]any); code != 200 || len(origins) != 2 {
			t.Fatalf("directory after fresh publish + stale heartbeat: %d %v", code, out)
		}
		// A heartbeat that predates a done does not bring the publish back.
		e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": "origin-1", "app": "live", "name": "show"})
		e.heartbeat(t, "origin-1", "live/show")
		if os, _ := e.store.StreamOrigins(ctx, e.stream.ID); len(os) != 1 || os[0].NodeName != "origin-2" {
			t.Fatalf("origins after done + stale heartbeat: %+v", os)
		}
		// Later heartbeats without the stream remove it once the grace is over.
		e.clock.add(4 * time.Second)
		e.heartbeat(t, "origin-1")
		// A Go relay with no publishes sends "published": null.
		if code, _ := e.call(t, "POST", "/internal/v1/nodes/origin-2/heartbeat", map[string]any{"load": map[string]any{}, "published": nil}); code != 200 {
			t.Fatalf("heartbeat with null: %d", code)
		}
		if e.live(t) {
			t.Fatal("still live after origin-2 stopped reporting it")
		}
		if code, _ := e.call(t, "POST", "/internal/v1/nodes/origin-2/heartbeat", map[string]any{"published": "live/show"}); code != 400 {
			t.Fatalf("published as a string: %d", code)
		}
		// A reconnect whose done was lost: origin-1 still holds an old
		// origin; the new publish restarts it, so a heartbeat taken just
		// before the reconnect does not remove it.
		e.heartbeat(t, "origin-1", "live/show")
		e.clock.add(4 * time.Second)
		e.heartbeat(t, "origin-2") // still alive, holds nothing
		e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-1", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
		e.heartbeat(t, "origin-1")
		if !e.live(t) {
			t.Fatal("a heartbeat older than the reconnect removed it")
		}
		e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": "origin-1", "app": "live", "name": "show"})
		if e.live(t) {
			t.Fatal("live after done")
		}
		// Reaper: origin-2 publishes again, then stops heartbeating.
		e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{"node": "origin-2", "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey})
		e.clock.add(2 * time.Second)
		if err := e.srv.lv.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		if !e.live(t) {
			t.Fatal("reaped a node that missed only 2 heartbeats")
		}
		e.clock.add(2 * time.Second)
		if err := e.srv.lv.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		if e.live(t) {
			t.Fatal("a dead node still holds the stream")
		}
		if code, _ := e.call(t, "GET", "/internal/v1/directory/live/show", nil); code != 404 {
			t.Fatalf("directory of an offline stream: %d", code)
		}
		code, out = e.call(t, "GET", "/internal/v1/nodes?role=origin", nil)
		nodes, _ := out["nodes"].([]any)
		if code != 200 || len(nodes) != 2 {
			t.Fatalf("nodes: %d %v", code, out)
		}
		for _, n := range nodes {
			m := n.(map[string]any)
			if m["alive"] != false || m["rtmp_address"] != "127.0.0.1:1935" {
				t.Errorf("node after 4s of silence: %v", m)
			}
		}
		if code, _ := e.call(t, "GET", "/internal/v1/nodes?role=king", nil); code != 400 {
			t.Errorf("bad role filter: %d", code)
		}
	})
}

// TestPublishResolve: an edge learns the public name of the stream a publish
// is for, whichever form the encoder used, before hashing it to an origin.
func TestPublishResolve(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		for _, c := range []struct {
			app, name string
			status    int
			want      string
		}{
			{"live", "show", 200, "show"},
			{"live", e.stream.PublishKey, 200, "show"},
			{"other", e.stream.PublishKey, 404, ""}, // a key only names a stream of its own app
			{"live", "nope", 404, ""},
			{"live", "bad/name", 400, ""},
			{"", "show", 400, ""},
		} {
			code, out := e.call(t, "POST", "/internal/v1/publish/resolve", map[string]any{"app": c.app, "name": c.name})
			if code != c.status || (c.want != "" && out["name"] != c.want) {
				t.Errorf("resolve %s/%s: %d %v, want %d %q", c.app, c.name, code, out, c.status, c.want)
			}
			if c.status != 200 {
				if errBody, _ := out["error"].(map[string]any); errBody == nil || errBody["message"] == "" {
					t.Errorf("resolve %s/%s: error body %v", c.app, c.name, out)
				}
				if b, _ := json.Marshal(out); strings.Contains(string(b), e.stream.PublishKey) {
					t.Errorf("resolve %s/...: the key is echoed in %s", c.app, b)
				}
			}
		}
		code, _ := e.call(t, "POST", "/internal/v1/publish/resolve", json.RawMessage(`{"app":`))
		if code != 400 {
			t.Errorf("malformed body: %d", code)
		}
	})
}
