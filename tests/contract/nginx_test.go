package contract

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/portier/portier/models"
)

// nginxForm is the form nginx-rtmp's notify module posts: its own fields,
// then the client's query arguments appended (here key=... and x=1).
func nginxForm(call, name, clientArgs string) string {
	v := url.Values{}
	v.Set("call", call)
	v.Set("addr", "192.168.1.10")
	v.Set("clientid", "7")
	v.Set("app", "live")
	v.Set("flashver", "FMLE/3.0 (compatible; FMSc/1.0)")
	v.Set("swfurl", "")
	v.Set("tcurl", "rtmp://127.0.0.1:1935/live")
	v.Set("pageurl", "")
	v.Set("name", name)
	v.Set("type", "live")
	s := v.Encode()
	if clientArgs != "" {
		s += "&" + clientArgs
	}
	return s
}

func (e *env) nginx(call, name, clientArgs string) reply {
	e.t.Helper()
	return e.do("POST", withToken("/hooks/nginx-rtmp"), "application/x-www-form-urlencoded", nginxForm(call, name, clientArgs))
}

func TestNginxRTMPPublishLifecycle(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		if r := e.nginx("connect", "", ""); r.status != 200 {
			t.Fatalf("connect: %d", r.status)
		}
		for _, c := range []struct {
			name, args string
			status     int
		}{
			{"livestream", "key=wrong&x=1", 403},
			{"livestream", "x=1", 403},
			{"nosuchstream", "key=" + e.key, 404},
			{"wrongkeyasname0123456789", "", 404},
		} {
			if r := e.nginx("publish", c.name, c.args); r.status != c.status || r.body == "" {
				t.Errorf("publish %s?%s: %d %q, want %d", c.name, c.args, r.status, r.body, c.status)
			}
		}
		e.wantLive(false, "after refused publishes")
		r := e.nginx("publish", "livestream", "key="+url.QueryEscape(e.key)+"&x=1")
		if r.status != 200 || r.header.Get("Location") != "" {
			t.Fatalf("right key: %d %v", r.status, r.header)
		}
		e.wantLive(true, "publish")
		if r := e.nginx("play", "livestream", ""); r.status != 200 {
			t.Errorf("play: %d", r.status)
		}
		if r := e.nginx("play", "nosuchstream", ""); r.status != 404 {
			t.Errorf("play unknown: %d", r.status)
		}
		for _, call := range []string{"update", "play_done", "done", "record_done"} {
			if r := e.nginx(call, "livestream", ""); r.status != 200 {
				t.Errorf("%s: %d", call, r.status)
			}
		}
		for range 2 { // repeated publish_done is harmless
			if r := e.nginx("publish_done", "livestream", "key="+e.key); r.status != 200 {
				t.Fatalf("publish_done: %d", r.status)
			}
		}
		e.wantLive(false, "publish_done")
		if r := e.nginx("teleport", "livestream", ""); r.status != 400 {
			t.Errorf("unknown call: %d", r.status)
		}
		if r := e.do("POST", withToken("/hooks/nginx-rtmp"), "application/x-www-form-urlencoded", "%zz"); r.status != 400 {
			t.Errorf("malformed form: %d", r.status)
		}
	})
}

func TestNginxRTMPKeyAsNameRenames(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		r := e.nginx("publish", e.key, "")
		// nginx-rtmp takes a Location that is not rtmp:// as the new stream name.
		if r.status != 302 || r.header.Get("Location") != "livestream" {
			t.Fatalf("key as name: %d Location=%q", r.status, r.header.Get("Location"))
		}
		e.wantLive(true, "renamed publish")
		// nginx-rtmp reports publish_done with the name the client used (the key).
		if r := e.nginx("publish_done", e.key, ""); r.status != 200 {
			t.Fatalf("publish_done: %d", r.status)
		}
		e.wantLive(false, "publish_done under the key")
	})
}

func TestNginxRTMPGetAndUpdate(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		// notify_method get: everything is in the query, the token too.
		q := nginxForm("publish", "livestream", "key="+url.QueryEscape(e.key)) + "&token=" + url.QueryEscape(token)
		if r := e.do("GET", "/hooks/nginx-rtmp?"+q, "", ""); r.status != 200 {
			t.Fatalf("GET publish: %d %s", r.status, r.body)
		}
		e.wantLive(true, "GET publish")
		// Disabling the stream makes the next update refuse the session.
		off := false
		if _, err := e.store.UpdateStream(context.Background(), e.stream.ID, models.StreamUpdate{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		if r := e.nginx("update", "livestream", ""); r.status != 403 {
			t.Fatalf("update of a disabled stream: %d", r.status)
		}
		// Without a token nothing happens.
		r := e.do("POST", "/hooks/nginx-rtmp", "application/x-www-form-urlencoded", nginxForm("publish_done", "livestream", ""))
		if r.status != 401 || !strings.Contains(r.body, "token") {
			t.Fatalf("no token: %d %s", r.status, r.body)
		}
		e.wantLive(true, "unauthenticated publish_done")
	})
}
