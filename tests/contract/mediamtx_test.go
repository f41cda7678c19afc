package contract

import (
	"encoding/json"
	"testing"
	"time"
)

// mtxAuth is the JSON MediaMTX posts to authHTTPAddress.
func mtxAuth(action, path, query, user, pass, protocol string) string {
	b, _ := json.Marshal(map[string]any{
		"ip": "192.168.1.10", "user": user, "password": pass, "token": "", "action": action, "path": path,
		"protocol": protocol, "id": "d8bf6b0c-6a5e-4a4d-9b0c-3f3c55a0b0a1", "query": query,
	})
	return string(b)
}

func (e *env) mtx(body string) reply {
	e.t.Helper()
	return e.do("POST", withToken("/hooks/mediamtx"), "application/json", body)
}

func TestMediaMTXPublish(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		cases := []struct {
			name              string
			path, query, user string
			pass, proto       string
			status            int
		}{
			{"rtmp wrong key, no credentials", "live/livestream", "key=wrong", "", "", "rtmp", 401},
			{"rtsp wrong password", "live/livestream", "", "publisher", "wrong", "rtsp", 403},
			{"no key at all", "live/livestream", "", "", "", "rtsp", 401},
			{"unknown path", "live/nosuch", "key=" + e.key, "", "", "rtmp", 401},
			{"bad path", "live/a b", "", "", "", "rtmp", 400},
		}
		for _, c := range cases {
			r := e.mtx(mtxAuth("publish", c.path, c.query, c.user, c.pass, c.proto))
			if r.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
			}
		}
		e.wantLive(false, "after refused publishes")
		for _, c := range []struct{ name, path, query, user, pass, proto, node string }{
			{"rtmp query key", "live/livestream", "key=" + e.key, "", "", "rtmp", "a"},
			{"rtsp password", "live/livestream", "", "any", e.key, "rtsp", "b"},
			{"key as path", "live/" + e.key, "", "", "", "rtmp", "c"},
		} {
			r := e.do("POST", withToken("/hooks/mediamtx?node="+c.node), "application/json", mtxAuth("publish", c.path, c.query, c.user, c.pass, c.proto))
			if r.status != 200 {
				t.Fatalf("%s: %d %s", c.name, r.status, r.body)
			}
		}
		if o := e.origins(); len(o) != 3 {
			t.Fatalf("origins %v, want three named MediaMTX servers", o)
		}
		// read and playback: existing streams only.
		if r := e.mtx(mtxAuth("read", "live/livestream", "", "", "", "rtsp")); r.status != 200 {
			t.Errorf("read: %d", r.status)
		}
		if r := e.mtx(mtxAuth("playback", "live/livestream", "", "", "", "")); r.status != 200 {
			t.Errorf("playback: %d", r.status)
		}
		if r := e.mtx(mtxAuth("read", "live/nosuch", "", "", "", "rtsp")); r.status != 401 {
			t.Errorf("read unknown without credentials: %d", r.status)
		}
		// MediaMTX's own API: only with the cluster token.
		if r := e.mtx(mtxAuth("api", "", "", "", "", "")); r.status != 401 {
			t.Errorf("api without credentials: %d", r.status)
		}
		if r := e.mtx(mtxAuth("metrics", "", "", "admin", "nope", "")); r.status != 403 {
			t.Errorf("metrics with a wrong password: %d", r.status)
		}
		if r := e.mtx(mtxAuth("pprof", "", "", "admin", token, "")); r.status != 200 {
			t.Errorf("pprof with the cluster token: %d", r.status)
		}
		if r := e.mtx(mtxAuth("teleport", "live/livestream", "", "", "", "")); r.status != 400 {
			t.Errorf("unknown action: %d", r.status)
		}
		if r := e.mtx(`{"action":`); r.status != 400 {
			t.Errorf("malformed: %d", r.status)
		}
		// runOnUnpublish, per server; repeats are harmless; the key-as-path publish ends under its path.
		for _, u := range []string{"/hooks/mediamtx/unpublish?node=a&path=live/livestream", "/hooks/mediamtx/unpublish?node=a&path=live/livestream",
			"/hooks/mediamtx/unpublish?node=b&path=live/livestream"} {
			if r := e.do("POST", withToken(u), "", ""); r.status != 200 {
				t.Fatalf("%s: %d %s", u, r.status, r.body)
			}
		}
		e.wantLive(true, "server c still publishes")
		if r := e.do("POST", withToken("/hooks/mediamtx/unpublish?node=c"), "application/json", `{"path":"live/`+e.key+`"}`); r.status != 200 {
			t.Fatalf("unpublish with a JSON body: %d %s", r.status, r.body)
		}
		e.wantLive(false, "every MediaMTX server unpublished")
		if r := e.do("POST", withToken("/hooks/mediamtx/unpublish"), "", ""); r.status != 400 {
			t.Errorf("unpublish without path: %d", r.status)
		}
	})
}

func TestMediaMTXOriginTTL(t *testing.T) {
	o := envOpts{ttl: map[string]time.Duration{"mediamtx": 300 * time.Millisecond}, hb: 50 * time.Millisecond, start: true}
	forEachStore(t, o, func(t *testing.T, e *env) {
		if r := e.mtx(mtxAuth("publish", "live/livestream", "key="+e.key, "", "", "rtmp")); r.status != 200 {
			t.Fatalf("publish: %d", r.status)
		}
		// runOnReady keeps confirming the publish: it stays live past the TTL.
		deadline := time.Now().Add(900 * time.Millisecond)
		for time.Now().Before(deadline) {
			if r := e.do("POST", withToken("/hooks/mediamtx/ready?path=live/livestream"), "", ""); r.status != 200 {
				t.Fatalf("ready: %d %s", r.status, r.body)
			}
			e.wantLive(true, "confirmed publish")
			time.Sleep(100 * time.Millisecond) // the confirmation cadence of a runOnReady loop
		}
		// The unpublish hook is lost: the TTL clears the state.
		deadline = time.Now().Add(5 * time.Second)
		for e.live() {
			if time.Now().After(deadline) {
				t.Fatal("live state never expired after the confirmations stopped")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// ready restores a publish whose state expired (the server still has it).
		if r := e.do("POST", withToken("/hooks/mediamtx/ready?path=live/livestream"), "", ""); r.status != 200 {
			t.Fatalf("ready: %d", r.status)
		}
		e.wantLive(true, "ready restores")
		if r := e.do("POST", withToken("/hooks/mediamtx/ready?path=live/nosuch"), "", ""); r.status != 404 {
			t.Errorf("ready of an unknown path: %d", r.status)
		}
	})
}
