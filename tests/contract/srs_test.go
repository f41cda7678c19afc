package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

// SRS http_hooks bodies as SRS documents them (conf/full.conf and the
// HTTP callback page): SRS 5/6 send server_id, stream_url and stream_id and
// a string client_id; SRS 3 sends a numeric client_id and no server_id.
const (
	srsOnConnect = `{"action": "on_connect", "client_id": 1985, "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"tcUrl": "rtmp://video.test.com/live?key=d2fa801d08e3f90ed1e1670e6e52651a", "pageUrl": "http://www.test.com/live.html"}`
	srsOnClose = `{"action": "on_close", "client_id": 1985, "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"send_bytes": 10240, "recv_bytes": 10240}`
	srsOnPublish = `{"server_id": "vid-0xk989d", "action": "on_publish", "client_id": "341w361a", "ip": "127.0.0.1",
"vhost": "__defaultVhost__", "app": "live", "tcUrl": "rtmp://127.0.0.1:1935/live?vhost=__defaultVhost__",
"stream": "STREAM", "param": "PARAM", "stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
	srsOnPublishV3 = `{"action": "on_publish", "client_id": 1985, "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"tcUrl": "rtmp://video.test.com/live", "stream": "STREAM", "param": "PARAM"}`
	srsOnUnpublish = `{"action": "on_unpublish", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"stream": "STREAM", "param": "PARAM", "server_id": "vid-werty", "stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
	srsOnPlay = `{"action": "on_play", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"stream": "STREAM", "param": "?token=xxx&salt=yyy", "pageUrl": "http://www.test.com/live.html", "server_id": "vid-werty",
"stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
	srsOnStop = `{"action": "on_stop", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"stream": "livestream", "param": "?token=xxx&salt=yyy", "server_id": "vid-werty",
"stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
	srsOnDvr = `{"action": "on_dvr", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"stream": "livestream", "param": "?token=xxx&salt=yyy", "cwd": "/usr/local/srs",
"file": "./objs/nginx/html/live/livestream.1420254068776.flv", "server_id": "vid-werty",
"stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
	srsOnHLS = `{"action": "on_hls", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live",
"stream": "livestream", "param": "?token=xxx&salt=yyy", "duration": 9.36, "cwd": "/usr/local/srs",
"file": "./objs/nginx/html/live/livestream/2015-04-23/01/476584165.ts", "url": "live/livestream/2015-04-23/01/476584165.ts",
"m3u8": "./objs/nginx/html/live/livestream/live.m3u8", "m3u8_url": "live/livestream/live.m3u8",
"seq_no": 100, "server_id": "vid-werty", "stream_url": "video.test.com/live/livestream", "stream_id": "vid-124q9y3"}`
)

func srsBody(tmpl, stream, param string) string {
	b := strings.ReplaceAll(tmpl, `"STREAM"`, strQuote(stream))
	return strings.ReplaceAll(b, `"PARAM"`, strQuote(param))
}

func strQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// srs posts a hook the way SRS does (it has sent both application/json and
// the misspelt application-json).
func (e *env) srs(body string) reply {
	e.t.Helper()
	return e.do("POST", withToken("/hooks/srs"), "application/json", body)
}

// srsAllowed is SRS's own rule: HTTP 200 and a body that is 0 or a JSON
// object with code 0.
func srsAllowed(t *testing.T, r reply) bool {
	t.Helper()
	if r.status != 200 {
		return false
	}
	if strings.TrimSpace(r.body) == "0" {
		return true
	}
	var m struct {
		Code *int `json:"code"`
	}
	if err := json.Unmarshal([]byte(r.body), &m); err != nil || m.Code == nil {
		t.Fatalf("SRS cannot read the reply %q", r.body)
	}
	return *m.Code == 0
}

func TestSRSPublishLifecycle(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		// Every action SRS documents gets a reply SRS understands.
		for _, b := range []string{srsOnConnect, srsOnClose, srsOnStop, srsOnDvr, srsOnHLS} {
			if r := e.srs(b); !srsAllowed(t, r) {
				t.Errorf("notification refused: %d %s for %.40s", r.status, r.body, b)
			}
		}
		deny := []struct{ stream, param, why string }{
			{"livestream", "?key=wrong", "wrong key"},
			{"livestream", "", "no key"},
			{"livestream", "?token=xxx&salt=yyy", "no key among other params"},
			{"nosuchstream", "?key=" + e.key, "unknown stream"},
			{"live stream", "", "invalid name"},
		}
		for _, d := range deny {
			r := e.srs(srsBody(srsOnPublish, d.stream, d.param))
			if srsAllowed(t, r) {
				t.Errorf("%s: allowed", d.why)
			}
			if r.status >= 500 {
				t.Errorf("%s: server error %d for a client error", d.why, r.status)
			}
			m := r.json(t)
			if m["code"] == float64(0) || m["msg"] == "" {
				t.Errorf("%s: reply %v", d.why, m)
			}
		}
		e.wantLive(false, "after denied publishes")

		r := e.srs(srsBody(srsOnPublish, "livestream", "?key="+e.key))
		if !srsAllowed(t, r) {
			t.Fatalf("right key refused: %d %s", r.status, r.body)
		}
		e.wantLive(true, "after on_publish")
		// SRS 3 body, another server, key in the param with other params: a second origin.
		r = e.srs(srsBody(srsOnPublishV3, "livestream", "?vhost=x&key="+e.key))
		if !srsAllowed(t, r) {
			t.Fatalf("SRS 3 on_publish refused: %d %s", r.status, r.body)
		}
		if o := e.origins(); len(o) != 2 {
			t.Fatalf("origins %v, want two SRS servers", o)
		}
		// on_play: public for existing streams, refused for unknown ones.
		if r := e.srs(srsBody(srsOnPlay, "livestream", "")); !srsAllowed(t, r) {
			t.Errorf("on_play refused: %d %s", r.status, r.body)
		}
		if r := e.srs(srsBody(srsOnPlay, "nosuchstream", "")); srsAllowed(t, r) || r.status >= 500 {
			t.Errorf("on_play of an unknown stream: %d %s", r.status, r.body)
		}
		// on_unpublish from vid-werty (never published) changes nothing.
		if r := e.srs(srsBody(srsOnUnpublish, "livestream", "")); !srsAllowed(t, r) {
			t.Fatalf("on_unpublish: %d %s", r.status, r.body)
		}
		e.wantLive(true, "after on_unpublish of a server that never published")
		// The real ones: server vid-0xk989d and the SRS 3 server (named by its address).
		unpub := strings.Replace(srsBody(srsOnUnpublish, "livestream", ""), `"vid-werty"`, `"vid-0xk989d"`, 1)
		for range 2 { // SRS retries; a repeat is harmless
			if r := e.srs(unpub); !srsAllowed(t, r) {
				t.Fatalf("on_unpublish: %d %s", r.status, r.body)
			}
		}
		e.wantLive(true, "one SRS server still publishes")
		v3 := strings.Replace(srsOnUnpublish, `"server_id": "vid-werty", `, "", 1)
		if r := e.srs(srsBody(v3, "livestream", "")); !srsAllowed(t, r) {
			t.Fatalf("on_unpublish: %d %s", r.status, r.body)
		}
		e.wantLive(false, "after every on_unpublish")
	})
}

func TestSRSKeyAsStreamName(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		// OBS users paste the key as the stream name; SRS cannot rename, so
		// the publish is allowed under the key and counted for the stream.
		r := e.srs(srsBody(srsOnPublish, e.key, ""))
		if !srsAllowed(t, r) {
			t.Fatalf("key as name refused: %d %s", r.status, r.body)
		}
		e.wantLive(true, "key as name")
		r = e.srs(strings.Replace(srsBody(srsOnUnpublish, e.key, ""), `"vid-werty"`, `"vid-0xk989d"`, 1))
		if !srsAllowed(t, r) {
			t.Fatalf("on_unpublish: %d %s", r.status, r.body)
		}
		e.wantLive(false, "on_unpublish with the key as name")
	})
}

func TestSRSBadInputAndAuth(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		for _, b := range []string{`{"action":`, `[]`, `{"action":"on_teleport","app":"live"}`, `{"app":"live"}`} {
			r := e.srs(b)
			if srsAllowed(t, r) || r.status != 400 {
				t.Errorf("%q: %d %s", b, r.status, r.body)
			}
		}
		big := `{"action":"on_publish","app":"live","stream":"` + strings.Repeat("a", 2<<20) + `"}`
		if r := e.srs(big); r.status != 400 {
			t.Errorf("2 MiB body: %d", r.status)
		}
		r := e.do("POST", "/hooks/srs", "application/json", srsBody(srsOnPublish, "livestream", "?key="+e.key))
		if r.status != 401 || !strings.Contains(r.body, "cluster token") {
			t.Errorf("without token: %d %s", r.status, r.body)
		}
		r = e.do("POST", "/hooks/srs?token=wrong", "application/json", srsBody(srsOnPublish, "livestream", "?key="+e.key))
		if r.status != 401 {
			t.Errorf("wrong token: %d %s", r.status, r.body)
		}
		e.wantLive(false, "unauthenticated hooks")
	})
}
