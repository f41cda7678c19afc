package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
)

func (e *env) native(path string, body any) reply {
	e.t.Helper()
	b, _ := json.Marshal(body)
	if raw, ok := body.(rawJSON); ok {
		b = []byte(raw) // sent as is, valid JSON or not
	}
	req, _ := http.NewRequest("POST", e.ts.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: buf.String()}
}

func (e *env) waitLive(want bool, within time.Duration, why string) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for e.live() != want {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: live never became %v (origins %v)", why, want, e.origins())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRepeatedAndLostHooks(t *testing.T) {
	o := envOpts{hb: 100 * time.Millisecond, start: true}
	forEachStore(t, o, func(t *testing.T, e *env) {
		pub := map[string]any{"node": "origin-1", "app": "live", "name": "livestream", "query": "key=" + e.key}
		done := map[string]any{"node": "origin-1", "app": "live", "name": "livestream"}
		hb := func(published ...string) {
			if published == nil {
				published = []string{}
			}
			if r := e.native("/internal/v1/nodes/origin-1/heartbeat", map[string]any{"load": map[string]any{}, "published": published}); r.status != 200 {
				t.Fatalf("heartbeat: %d %s", r.status, r.body)
			}
		}
		for range 2 { // re-register is idempotent
			if r := e.native("/internal/v1/nodes/register", map[string]any{"name": "origin-1", "role": "origin", "rtmp_address": "127.0.0.1:1935"}); r.status != 200 {
				t.Fatalf("register: %d %s", r.status, r.body)
			}
		}
		// Repeated publish hooks, one done: offline, one publish counted per hook.
		for range 3 {
			if r := e.native("/internal/v1/publish/authorize", pub); r.status != 200 {
				t.Fatalf("publish: %d %s", r.status, r.body)
			}
		}
		e.wantLive(true, "repeated publish")
		e.native("/internal/v1/publish/done", done)
		e.wantLive(false, "one done after repeated publishes")

		// Out of order: the done overtakes a delayed authorize. The node's
		// heartbeats (it holds nothing) clear the wrong state after the grace.
		e.native("/internal/v1/publish/done", done)
		e.native("/internal/v1/publish/authorize", pub)
		e.wantLive(true, "stale authorize")
		deadline := time.Now().Add(5 * time.Second)
		for e.live() {
			if time.Now().After(deadline) {
				t.Fatal("heartbeats never cleared a publish the node does not hold")
			}
			hb()
			time.Sleep(50 * time.Millisecond) // heartbeat cadence
		}

		// Lost done and lost authorize: heartbeats restore and clear the state.
		hb("live/livestream")
		e.wantLive(true, "heartbeat restores a lost authorize")
		// Lost done, and the node dies: the reaper clears it within 3 intervals.
		e.waitLive(false, 3*time.Second, "dead node")
		evs, _, err := e.store.ListAudit(context.Background(), models.AuditFilter{Action: "node.dead"})
		if err != nil || len(evs) == 0 {
			t.Fatalf("no audit event for the dead node: %v", err)
		}
		// The node comes back: heartbeat says 404, it registers again.
		if r := e.native("/internal/v1/nodes/ghost/heartbeat", map[string]any{"published": []string{}}); r.status != 404 {
			t.Fatalf("unknown node heartbeat: %d", r.status)
		}
		st, _ := e.store.StreamByID(context.Background(), e.stream.ID)
		if st.PublishCount != 4 {
			t.Fatalf("publish count %d, want 4 (one per allowed authorize)", st.PublishCount)
		}
	})
}

func TestMixedDialectsShareOneLiveState(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		// Redundant publishing through three media servers of three kinds.
		if r := e.srs(srsBody(srsOnPublish, "livestream", "?key="+e.key)); !srsAllowed(t, r) {
			t.Fatalf("srs: %d", r.status)
		}
		if r := e.nginx("publish", e.key, ""); r.status != 302 {
			t.Fatalf("nginx: %d", r.status)
		}
		if r := e.mtx(mtxAuth("publish", "live/livestream", "key="+e.key, "", "", "rtmp")); r.status != 200 {
			t.Fatalf("mediamtx: %d", r.status)
		}
		if o := e.origins(); len(o) != 3 {
			t.Fatalf("origins %v", o)
		}
		// Each unpublish, twice, in any order: live until the last.
		steps := []func() reply{
			func() reply { return e.do("POST", withToken("/hooks/mediamtx/unpublish?path=live/livestream"), "", "") },
			func() reply {
				return e.srs(srsBody(srsOnUnpublish, "livestream", "")) // vid-werty never published: no-op
			},
			func() reply { return e.nginx("publish_done", e.key, "") },
		}
		for i, s := range steps {
			for range 2 {
				if r := s(); r.status != 200 {
					t.Fatalf("step %d: %d %s", i, r.status, r.body)
				}
			}
		}
		e.wantLive(true, "SRS server vid-0xk989d still publishes")
		srsDone := srsBody(srsOnUnpublish, "livestream", "")
		srsDone = string(bytes.Replace([]byte(srsDone), []byte(`"vid-werty"`), []byte(`"vid-0xk989d"`), 1))
		if r := e.srs(srsDone); !srsAllowed(t, r) {
			t.Fatalf("srs unpublish: %d", r.status)
		}
		e.wantLive(false, "all unpublished")
	})
}

func TestHookAllowListsAndLoopback(t *testing.T) {
	lo := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	forEachStore(t, envOpts{allow: map[string][]netip.Prefix{"srs": lo}}, func(t *testing.T, e *env) {
		if r := e.do("POST", "/hooks/srs", "application/json", srsBody(srsOnPublish, "livestream", "?key="+e.key)); !srsAllowed(t, r) {
			t.Fatalf("allow-listed srs: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/hooks/nginx-rtmp", "application/x-www-form-urlencoded", nginxForm("publish", "livestream", "key="+e.key)); r.status != 401 {
			t.Fatalf("nginx is not allow-listed: %d", r.status)
		}
		if r := e.do("POST", "/hooks/mediamtx", "application/json", mtxAuth("read", "live/livestream", "", "", "", "rtsp")); r.status != 401 {
			t.Fatalf("mediamtx is not allow-listed: %d", r.status)
		}
		if r := e.do("GET", "/internal/v1/nodes", "", ""); r.status != 401 {
			t.Fatalf("native is not allow-listed: %d", r.status)
		}
	})
}

// TestNoImplicitLoopbackTrust: a caller on loopback is trusted for nothing
// by its address (behind a reverse proxy on the same host, every caller is
// loopback). The node and concierge APIs need the cluster token; hooks need
// it unless --hook-allow lists the caller's network, which never opens the
// concierge API (assignments carry task command lines with keys).
func TestNoImplicitLoopbackTrust(t *testing.T) {
	anon := func(t *testing.T, e *env) {
		t.Helper()
		for _, p := range []string{"/internal/v1/concierge/c1/assignments?wait_ms=0", "/internal/v1/nodes", "/internal/v1/directory/live/livestream"} {
			if r := e.do("GET", p, "", ""); r.status != 401 {
				t.Errorf("anonymous loopback GET %s: %d %s, want 401", p, r.status, r.body)
			}
		}
		for p, body := range map[string]string{
			"/internal/v1/concierge/c1/status":      `{"reports":[{"task_id":1,"epoch":1,"state":"running"}]}`,
			"/internal/v1/nodes/register":           `{"name":"intruder","role":"concierge","capacity":1}`,
			"/internal/v1/nodes/origin-1/heartbeat": `{"load":{}}`,
		} {
			if r := e.do("POST", p, "application/json", body); r.status != 401 {
				t.Errorf("anonymous loopback POST %s: %d, want 401", p, r.status)
			}
		}
	}
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		anon(t, e)
		if r := e.do("POST", "/hooks/nginx-rtmp", "application/x-www-form-urlencoded", nginxForm("publish", "livestream", "key="+e.key)); r.status != 401 {
			t.Fatalf("loopback nginx hook without token: %d, want 401", r.status)
		}
		if r := e.do("POST", "/hooks/nginx-rtmp?token="+token, "application/x-www-form-urlencoded", nginxForm("publish", "livestream", "key="+e.key)); r.status != 200 {
			t.Fatalf("nginx hook with ?token=: %d %s", r.status, r.body)
		}
		e.wantLive(true, "publish with the token")
	})
	allow, err := portier.ParseHookAllow("127.0.0.1/32") // --hook-allow 127.0.0.1/32
	if err != nil {
		t.Fatal(err)
	}
	forEachStore(t, envOpts{allow: allow}, func(t *testing.T, e *env) {
		anon(t, e)
		if r := e.do("POST", "/hooks/nginx-rtmp", "application/x-www-form-urlencoded", nginxForm("publish", "livestream", "key="+e.key)); r.status != 200 {
			t.Fatalf("--hook-allow 127.0.0.1/32 nginx hook: %d %s", r.status, r.body)
		}
		e.wantLive(true, "allow-listed loopback publish")
	})
}
