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
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/api"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
)

// apiEnv is a Server on one store with users of every role and tokens.
type apiEnv struct {
	t      *testing.T
	srv    *Server
	h      http.Handler
	store  *models.Store
	tokens map[string]string // admin, op1, op2, viewer, op1-read, admin-rw (no admin scope)
	users  map[string]*models.User
}

func newAPIEnv(t *testing.T, st *models.Store) *apiEnv {
	t.Helper()
	return newAPIEnvWith(t, st, nil)
}

// newAPIEnvWith is newAPIEnv with Params changed by edit (if not nil).
func newAPIEnvWith(t *testing.T, st *models.Store, edit func(*Params)) *apiEnv {
	t.Helper()
	ctx := context.Background()
	p := Params{Store: st, Logger: slog.New(slog.DiscardHandler), PublicHost: "media.example", RTMPPort: 1935,
		RTSPPort: 8554, PlayHTTPBase: "http://media.example:8081"}
	if edit != nil {
		edit(&p)
	}
	srv, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, srv: srv, h: srv.Handler(), store: st, tokens: map[string]string{}, users: map[string]*models.User{}}
	for _, u := range []struct{ name, role string }{{"admin", models.RoleAdmin}, {"op1", models.RoleOperator}, {"op2", models.RoleOperator}, {"viewer", models.RoleViewer}} {
		usr, err := st.CreateUser(ctx, u.name, "password-"+u.name, u.role)
		if err != nil {
			t.Fatal(err)
		}
		e.users[u.name] = usr
		scopes := []string{"read", "write"}
		if u.role == models.RoleAdmin {
			scopes = append(scopes, "admin")
		}
		tok, _, err := st.CreateToken(ctx, usr.ID, "test", scopes, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[u.name] = tok
	}
	tok, _, _ := st.CreateToken(ctx, e.users["op1"].ID, "ro", []string{"read"}, nil)
	e.tokens["op1-read"] = tok
	tok, _, _ = st.CreateToken(ctx, e.users["admin"].ID, "rw", []string{"read", "write"}, nil)
	e.tokens["admin-rw"] = tok
	return e
}

// do sends a request as who ("" for none) and returns status and decoded body.
func (e *apiEnv) do(who, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "/api/v1"+path, r)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	}
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			e.t.Fatalf("%s %s: non-JSON body %q", method, path, w.Body.String())
		}
	}
	return w.Code, out
}

func (e *apiEnv) mustDo(who, method, path, body string, want int) map[string]any {
	e.t.Helper()
	code, out := e.do(who, method, path, body)
	if code != want {
		e.t.Fatalf("%s %s as %s: status %d, want %d; body %v", method, path, who, code, want, out)
	}
	return out
}

func errCode(body map[string]any) (code, field string) {
	eo, _ := body["error"].(map[string]any)
	code, _ = eo["code"].(string)
	field, _ = eo["field"].(string)
	return
}

func id(body map[string]any) string {
	return jsonNum(body["id"])
}

func nonEmpty(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func forEachStore(t *testing.T, fn func(t *testing.T, e *apiEnv)) {
	forEachStoreWith(t, nil, fn)
}

// forEachStoreWith is forEachStore with Params changed by edit (if not nil).
func forEachStoreWith(t *testing.T, edit func(*Params), fn func(t *testing.T, e *apiEnv)) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) { fn(t, newAPIEnvWith(t, n.Store, edit)) })
	}
}

func TestAPIStreamsCreateAndIngest(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
		key, _ := s["key"].(string)
		if len(key) < 30 || s["app"] != "live" || s["live"] != false || s["name"] != "cam1" || s["enabled"] != true {
			t.Fatalf("create answer %v", s)
		}
		ing := s["ingest"].(map[string]any)
		wantURL := "rtmp://media.example:1935/live/cam1?key=" + key
		if ing["rtmp_url"] != wantURL || ing["obs_server"] != "rtmp://media.example:1935/live" || ing["obs_stream_key"] != key ||
			!strings.Contains(ing["ffmpeg"].(string), "'"+wantURL+"'") {
			t.Fatalf("ingest %v", ing)
		}
		play := s["play"].(map[string]any)
		if play["rtmp"] != "rtmp://media.example:1935/live/cam1" || play["flv"] != "http://media.example:8081/live/cam1.flv" ||
			play["rtsp"] != "rtsp://media.example:8554/live/cam1" {
			t.Fatalf("play %v", play)
		}
		// The owner sees the key on GET; an admin and a viewer see only the hint; another operator gets 404.
		if got := e.mustDo("op1", "GET", "/streams/"+id(s), "", 200); got["key"] != key {
			t.Fatalf("owner GET key %v", got["key"])
		}
		for _, who := range []string{"admin", "viewer"} {
			got := e.mustDo(who, "GET", "/streams/"+id(s), "", 200)
			if _, has := got["key"]; has || got["ingest"] != nil || got["key_hint"] != key[:4]+"…" {
				t.Fatalf("%s sees secrets: %v", who, got)
			}
		}
		code, body := e.do("op2", "GET", "/streams/"+id(s), "")
		missingCode, missing := e.do("op2", "GET", "/streams/999999", "")
		if code != 404 || missingCode != 404 || jsonNum(body["error"].(map[string]any)["message"]) != jsonNum(missing["error"].(map[string]any)["message"]) {
			t.Fatalf("other operator's stream: %d %v vs missing %d %v", code, body, missingCode, missing)
		}
		// Origins holding the publish show on GET of one stream.
		sid := int64(s["id"].(float64))
		if _, err := e.store.AddOrigin(context.Background(), sid, "origin-1", time.Now(), true, nil); err != nil {
			t.Fatal(err)
		}
		got := e.mustDo("viewer", "GET", "/streams/"+id(s), "", 200)
		if orig, _ := got["origins"].([]any); len(orig) != 1 || orig[0].(map[string]any)["node"] != "origin-1" || got["live"] != true {
			t.Fatalf("origins %v live %v", got["origins"], got["live"])
		}
		// A kick: viewers may not, other operators do not see the stream,
		// the owner ends the publish (202, naming the relay); the stream
		// is offline, the key unchanged, and a second kick finds nothing.
		if code, body := e.do("viewer", "POST", "/streams/"+id(s)+"/kick", ""); code != 403 {
			t.Fatalf("viewer kick: %d %v", code, body)
		}
		if code, body := e.do("op2", "POST", "/streams/"+id(s)+"/kick", ""); code != 404 {
			t.Fatalf("other operator's kick: %d %v", code, body)
		}
		kick := e.mustDo("op1", "POST", "/streams/"+id(s)+"/kick", "", 202)
		if ended, _ := kick["ended"].([]any); len(ended) != 1 || ended[0].(map[string]any)["node"] != "origin-1" {
			t.Fatalf("kick answer %v", kick)
		}
		if got := e.mustDo("op1", "GET", "/streams/"+id(s), "", 200); got["live"] != false || got["key"] != key {
			t.Fatalf("after the kick: live %v, key changed %v", got["live"], got["key"] != key)
		}
		if code, body := e.do("op1", "POST", "/streams/"+id(s)+"/kick", ""); code != 409 {
			t.Fatalf("kick of an offline stream: %d %v", code, body)
		} else if c, _ := errCode(body); c != "conflict" {
			t.Fatalf("kick of an offline stream: %v", body)
		}
		if ev := e.mustDo("admin", "GET", "/audit?action=stream.kick", "", 200); ev["total"] != float64(1) {
			t.Fatalf("stream.kick audit events: %v", ev)
		}
		// Rotate gives a new key; the old one no longer finds the stream.
		rot := e.mustDo("op1", "POST", "/streams/"+id(s)+"/rotate-key", "", 200)
		if rot["key"] == key || rot["key"] == "" {
			t.Fatalf("rotate %v", rot)
		}
		if _, err := e.store.StreamByKey(context.Background(), key); err == nil {
			t.Fatal("old key still valid")
		}
		// Duplicate name: 409 on field name; same name in another app is fine.
		if code, body := e.do("op2", "POST", "/streams", `{"name":"cam1"}`); code != 409 {
			t.Fatalf("duplicate: %d %v", code, body)
		} else if c, f := errCode(body); c != "conflict" || f != "name" {
			t.Fatalf("duplicate error %v", body)
		}
		e.mustDo("op2", "POST", "/streams", `{"name":"cam1","app":"studio"}`, 201)
		// Every change is audited.
		ev := e.mustDo("admin", "GET", "/audit?action=stream.create", "", 200)
		if ev["total"] != float64(2) {
			t.Fatalf("audit %v", ev)
		}
		if ev := e.mustDo("op1", "GET", "/audit", "", 200); ev["total"] != float64(4) { // create + kick + the publish it revoked + rotate (nothing left to revoke)
			t.Fatalf("op1 audit %v", ev)
		}
	})
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		ctx := context.Background()
		s := e.mustDo("op1", "POST", "/streams", `{"name":"mine"}`, 201)
		sid := id(s)
		big := `{"name":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
		cases := []struct {
			who, method, path, body string
			status                  int
			code, field             string
		}{
			{"", "GET", "/streams", "", 401, "unauthorized", ""},
			{"op1", "POST", "/streams", `{"name":`, 400, "malformed_json", ""},
			{"op1", "POST", "/streams", `[1,2]`, 400, "malformed_json", ""},
			{"op1", "POST", "/streams", ``, 400, "malformed_json", ""},
			{"op1", "POST", "/streams", `{"name":"x"} {"name":"y"}`, 400, "malformed_json", ""},
			{"op1", "POST", "/streams", `{"name":"ok","colour":"red"}`, 400, "invalid", "colour"},
			{"op1", "POST", "/streams", `{"name":5}`, 400, "invalid", "name"},
			{"op1", "POST", "/streams", `{"name":"bad name!"}`, 400, "invalid", "name"},
			{"op1", "POST", "/streams", `{"name":"` + strings.Repeat("a", 65) + `"}`, 400, "invalid", "name"},
			{"op1", "POST", "/streams", `{"name":"ok","app":"a/b"}`, 400, "invalid", "app"},
			{"op1", "POST", "/streams", big, 413, "body_too_large", ""},
			{"op1", "GET", "/streams/abc", "", 400, "invalid", "id"},
			{"op1", "GET", "/streams?limit=101", "", 400, "invalid", "limit"},
			{"op1", "GET", "/streams?offset=-1", "", 400, "invalid", "offset"},
			{"op1", "GET", "/streams?live=maybe", "", 400, "invalid", "live"},
			{"op1", "GET", "/streams?app=a%2Fb", "", 400, "invalid", "app"},
			{"op1", "GET", "/tasks?state=dancing", "", 400, "invalid", "state"},
			{"op1", "GET", "/audit?since=yesterday", "", 400, "invalid", "since"},
			{"op1", "PATCH", "/streams/" + sid, `{"enabled":"yes"}`, 400, "invalid", "enabled"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"restream","name":"x","target":"file:///etc/passwd"}`, 400, "invalid", "target"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"restream","name":"x","target":"http://a.example/x"}`, 400, "invalid", "target"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"restream","name":"x","target":"rtmp://a.example/x y"}`, 400, "invalid", "target"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"restream","name":"x","target":"rtmp://a.example/x","key":"a b"}`, 400, "invalid", "key"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"restream","name":"x","target":"rtmp://a.example/x","bogus":1}`, 400, "invalid", "bogus"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"teleport","name":"x"}`, 400, "invalid", "type"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"name":"x"}`, 400, "invalid", "type"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"record","name":"x","format":"avi"}`, 400, "invalid", "format"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"pull","name":"x","source":"https://a.example/v.mp4"}`, 400, "invalid", "source"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"name":"a","width":641,"height":360,"video_bitrate_kbps":800}]}`, 400, "invalid", "renditions[0].width"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","id":3,"renditions":[]}`, 400, "invalid", "id"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[]}`, 400, "invalid", "renditions"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","segment_seconds":60,"renditions":[{"preset":"720p"}]}`, 400, "invalid", "segment_seconds"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"preset":"4k"}]}`, 400, "invalid", "renditions[0].preset"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"preset":"720p"},{"preset":"720p"}]}`, 400, "invalid", "renditions[1].name"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"preset":"audio","kind":"video"}]}`, 400, "invalid", "renditions[0].kind"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"name":"a","kind":"copy","width":640,"height":360}]}`, 400, "invalid", "renditions[0].width"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"name":"a","kind":"audio","video_bitrate_kbps":800}]}`, 400, "invalid", "renditions[0].video_bitrate_kbps"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"preset":"copy"},{"name":"b","kind":"copy"}]}`, 400, "invalid", "renditions[1].kind"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"name":"a","width":640,"height":360,"fps":500,"video_bitrate_kbps":800}]}`, 400, "invalid", "renditions[0].fps"},
			{"op1", "POST", "/streams/" + sid + "/task-configs", `{"type":"hls","name":"x","renditions":[{"preset":"360p","fps":"30"}]}`, 400, "invalid", "renditions.fps"},
			{"op2", "POST", "/streams/" + sid + "/task-configs", `{"type":"record","name":"x"}`, 404, "not_found", ""},
			{"op2", "PATCH", "/streams/" + sid, `{"enabled":false}`, 404, "not_found", ""},
			{"op2", "DELETE", "/streams/" + sid, ``, 404, "not_found", ""},
			{"viewer", "POST", "/streams", `{"name":"v"}`, 403, "forbidden", ""},
			{"viewer", "PATCH", "/streams/" + sid, `{"enabled":false}`, 403, "forbidden", ""},
			{"op1-read", "POST", "/streams", `{"name":"r"}`, 403, "forbidden", ""},
			{"op1-read", "DELETE", "/streams/" + sid, ``, 403, "forbidden", ""},
			{"op1", "GET", "/users", "", 403, "forbidden", ""},
			{"admin-rw", "GET", "/users", "", 403, "forbidden", ""},
			{"op1", "POST", "/applications", `{"name":"x"}`, 403, "forbidden", ""},
			{"op1", "POST", "/tokens", `{"scopes":["admin"]}`, 403, "forbidden", "scopes"},
			{"op1-read", "POST", "/tokens", `{"scopes":["read"]}`, 403, "forbidden", ""},
			{"op1", "POST", "/tokens", `{"scopes":["root"]}`, 400, "invalid", "scopes"},
			{"op1", "POST", "/tokens", `{"expires_at":"2001-01-01T00:00:00Z"}`, 400, "invalid", "expires_at"},
			{"admin", "POST", "/users", `{"username":"x","password":"short","role":"viewer"}`, 400, "invalid", "password"},
			{"admin", "POST", "/users", `{"username":"x","password":"longenough","role":"god"}`, 400, "invalid", "role"},
			{"admin", "POST", "/users", `{"username":"op1","password":"longenough","role":"viewer"}`, 409, "conflict", "username"},
			{"admin", "POST", "/applications", `{"name":"live"}`, 409, "conflict", "name"},
			{"admin", "GET", "/users/424242", "", 404, "not_found", ""},
			{"op1", "GET", "/tasks/424242", "", 404, "not_found", ""},
			{"op1", "POST", "/tasks/424242/restart", "", 404, "not_found", ""},
		}
		for _, c := range cases {
			code, body := e.do(c.who, c.method, c.path, c.body)
			gotCode, gotField := errCode(body)
			errObj, _ := body["error"].(map[string]any)
			if code != c.status || gotCode != c.code || gotField != c.field || !nonEmpty(errObj["message"]) || !nonEmpty(errObj["id"]) {
				p := c.path
				if len(c.body) > 200 {
					p += " (big body)"
				} else {
					p += " " + c.body
				}
				t.Errorf("%s %s as %s: %d %v; want %d %s field %q", c.method, p, c.who, code, body, c.status, c.code, c.field)
			}
		}
		// A chunked body (no Content-Length) over the limit is cut at 1 MiB too.
		req := httptest.NewRequest("POST", "/api/v1/streams", io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("b", 2*api.MaxBodyBytes)), strings.NewReader(`"}`)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+e.tokens["op1"])
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != 413 || !strings.Contains(w.Body.String(), "body_too_large") {
			t.Fatalf("chunked big body: %d %s", w.Code, w.Body.String())
		}
		// Failed requests wrote nothing: still one stream, one audit event.
		list, total, _ := e.store.ListStreams(ctx, models.StreamFilter{})
		if total != 1 || list[0].Name != "mine" || !list[0].Enabled {
			t.Fatalf("failed requests changed streams: %d %+v", total, list)
		}
		if _, n, _ := e.store.ListAudit(ctx, models.AuditFilter{}); n != 1 {
			t.Fatalf("audit events after failures: %d", n)
		}
		// Revoked and expired tokens get 401.
		tok := e.mustDo("op1", "POST", "/tokens", `{"name":"tmp","scopes":["read"]}`, 201)
		secret := tok["token"].(string)
		e.tokens["tmp"] = secret
		e.mustDo("tmp", "GET", "/me", "", 200)
		e.mustDo("op1", "DELETE", "/tokens/"+id(tok), "", 204)
		if code, body := e.do("tmp", "GET", "/me", ""); code != 401 {
			t.Fatalf("revoked token: %d %v", code, body)
		}
		if code, _ := e.do("op2", "DELETE", "/tokens/"+id(tok), ""); code != 404 {
			t.Fatalf("revoking another user's token: %d", code)
		}
		e.tokens["junk"] = "ptk_" + strings.Repeat("A", 43)
		if code, _ := e.do("junk", "GET", "/me", ""); code != 401 {
			t.Fatalf("unknown token: %d", code)
		}
		list2 := e.mustDo("op1", "GET", "/tokens", "", 200)
		raw, _ := json.Marshal(list2)
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(`"hash"`)) {
			t.Fatalf("token list leaks secrets: %s", raw)
		}
	})
}

func TestAPIPaginationAndFilters(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		for i := 0; i < 7; i++ {
			e.mustDo("op1", "POST", "/streams", `{"name":"s`+string(rune('a'+i))+`"}`, 201)
		}
		e.mustDo("op2", "POST", "/streams", `{"name":"other"}`, 201)
		p1 := e.mustDo("op1", "GET", "/streams?limit=3", "", 200)
		if p1["total"] != float64(7) || len(p1["items"].([]any)) != 3 || p1["next_offset"] != float64(3) {
			t.Fatalf("page 1: %v", p1)
		}
		p3 := e.mustDo("op1", "GET", "/streams?limit=3&offset=6", "", 200)
		if len(p3["items"].([]any)) != 1 || p3["next_offset"] != nil {
			t.Fatalf("last page: %v", p3)
		}
		for _, it := range p1["items"].([]any) {
			if _, has := it.(map[string]any)["key"]; has {
				t.Fatal("list shows keys")
			}
		}
		if all := e.mustDo("admin", "GET", "/streams?limit=100", "", 200); all["total"] != float64(8) {
			t.Fatalf("admin sees %v", all["total"])
		}
		if v := e.mustDo("viewer", "GET", "/streams", "", 200); v["total"] != float64(8) {
			t.Fatalf("viewer sees %v", v["total"])
		}
		// Mark one live directly and filter.
		e.store.DB.Model(&models.Stream{}).Where("name = ?", "sa").Update("live", true)
		if l := e.mustDo("op1", "GET", "/streams?live=true", "", 200); l["total"] != float64(1) {
			t.Fatalf("live filter %v", l)
		}
		if l := e.mustDo("op1", "GET", "/streams?live=false", "", 200); l["total"] != float64(6) {
			t.Fatalf("offline filter %v", l)
		}
	})
}

func TestAPITaskConfigsTasksNodesUsers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		ctx := context.Background()
		s := e.mustDo("op1", "POST", "/streams", `{"name":"show"}`, 201)
		base := "/streams/" + id(s) + "/task-configs"
		rc := e.mustDo("op1", "POST", base, `{"type":"restream","name":"yt","target":"rtmp://a.rtmp.youtube.com/live2","key":"abcd-efgh-ijkl-mnop-qrst","enabled":true}`, 201)
		if rc["target"] != "rtmp://a.rtmp.youtube.com/live2" || rc["format"] != "flv" || rc["key_set"] != true || rc["key"] != nil || rc["version"] != float64(1) {
			t.Fatalf("restream config %v", rc)
		}
		e.mustDo("op1", "POST", base, `{"type":"hls","name":"ladder","renditions":[{"name":"360p","width":640,"height":360,"video_bitrate_kbps":800,"audio_bitrate_kbps":96}]}`, 201)
		e.mustDo("op1", "POST", base, `{"type":"record","name":"rec","segment_seconds":30,"format":"ts"}`, 201)
		if code, body := e.do("op1", "POST", base, `{"type":"record","name":"rec"}`); code != 409 {
			t.Fatalf("duplicate config: %d %v", code, body)
		}
		// PATCH merges: a new target keeps the key.
		up := e.mustDo("op1", "PATCH", base+"/"+id(rc), `{"target":"rtmps://live.example:443/app"}`, 200)
		if up["target"] != "rtmps://live.example:443/app" || up["key_set"] != true || up["version"] != float64(2) {
			t.Fatalf("patched %v", up)
		}
		if code, _ := e.do("op1", "PATCH", base+"/"+id(rc), `{"type":"hls"}`); code != 400 {
			t.Fatalf("type change: %d", code)
		}
		if l := e.mustDo("viewer", "GET", base, "", 200); l["total"] != float64(3) {
			t.Fatalf("config list %v", l)
		}
		e.mustDo("op1", "GET", base+"/"+id(rc), "", 200)
		e.mustDo("op1", "DELETE", base+"/"+id(rc), "", 204)
		e.mustDo("op1", "GET", base+"/"+id(rc), "", 404)

		// Tasks: list by stream, ownership, restart.
		sid := int64(s["id"].(float64))
		task := &models.Task{StreamID: sid, Type: models.TypeRecord, DesiredState: models.DesiredRunning, State: models.TaskRunning,
			NodeName: "concierge-1", Epoch: 2, Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"secret-arg"}, Cost: taskcost.Copy}}
		if err := e.store.DB.Create(task).Error; err != nil {
			t.Fatal(err)
		}
		tl := e.mustDo("op1", "GET", "/tasks?stream="+id(s), "", 200)
		items := tl["items"].([]any)
		if len(items) != 1 {
			t.Fatalf("tasks %v", tl)
		}
		ti := items[0].(map[string]any)
		if ti["type"] != "record" || ti["state"] != "running" || ti["node"] != "concierge-1" || ti["epoch"] != float64(2) {
			t.Fatalf("task view %v", ti)
		}
		if ti["cost"] != taskcost.Cores(taskcost.Copy) || ti["cost"] != 0.1 { // CPU cores
			t.Fatalf("task cost %v, want %v cores", ti["cost"], taskcost.Cores(taskcost.Copy))
		}
		if raw, _ := json.Marshal(tl); bytes.Contains(raw, []byte("secret-arg")) {
			t.Fatal("task view shows arguments")
		}
		if l := e.mustDo("op2", "GET", "/tasks", "", 200); l["total"] != float64(0) {
			t.Fatalf("op2 sees tasks: %v", l)
		}
		e.mustDo("op2", "GET", "/tasks/"+jsonNum(task.ID), "", 404)
		e.mustDo("viewer", "POST", "/tasks/"+jsonNum(task.ID)+"/restart", "", 403)
		rt := e.mustDo("op1", "POST", "/tasks/"+jsonNum(task.ID)+"/restart", "", 200)
		if rt["epoch"] != float64(3) || rt["state"] != "pending" || rt["restarts"] != float64(1) {
			t.Fatalf("restart %v", rt)
		}

		// Nodes with liveness.
		if _, err := e.store.RegisterNode(ctx, models.Node{Name: "origin-1", Role: "origin", RTMPAddress: "127.0.0.1:1935"}, e.srv.lv.Now()); err != nil {
			t.Fatal(err)
		}
		nl := e.mustDo("viewer", "GET", "/nodes", "", 200)
		n0 := nl["items"].([]any)[0].(map[string]any)
		if n0["name"] != "origin-1" || n0["role"] != "origin" || n0["alive"] != true {
			t.Fatalf("nodes %v", nl)
		}
		// A concierge's capacity and cost used are both in CPU cores.
		if _, err := e.store.RegisterNode(ctx, models.Node{Name: "concierge-1", Role: "concierge", Capacity: 2}, e.srv.lv.Now()); err != nil {
			t.Fatal(err)
		}
		if err := e.store.NodeHeartbeat(ctx, "concierge-1", models.NodeLoad{Streams: 3, CostUsed: 3 * taskcost.Copy}, e.srv.lv.Now()); err != nil {
			t.Fatal(err)
		}
		if items := e.mustDo("viewer", "GET", "/nodes?role=concierge", "", 200)["items"].([]any); len(items) != 1 {
			t.Fatalf("concierges %v", items)
		} else {
			n := items[0].(map[string]any)
			load, _ := n["load"].(map[string]any)
			if n["capacity"] != float64(2) || load["cost_used"] != 0.3 || load["streams"] != float64(3) {
				t.Fatalf("concierge view %v: want capacity 2 and cost_used 0.3 (cores)", n)
			}
		}

		// Users: admin creates, patches, disables; the disabled user's token stops working.
		u := e.mustDo("admin", "POST", "/users", `{"username":"carol","password":"carols-password","role":"operator"}`, 201)
		if _, has := u["password_hash"]; has {
			t.Fatal("user view shows the password hash")
		}
		carol, _ := e.store.UserByName(ctx, "carol")
		tok, _, _ := e.store.CreateToken(ctx, carol.ID, "", nil, nil)
		e.tokens["carol"] = tok
		e.mustDo("carol", "GET", "/me", "", 200)
		e.mustDo("admin", "PATCH", "/users/"+id(u), `{"disabled":true}`, 200)
		e.mustDo("carol", "GET", "/me", "", 401)
		if code, _ := e.do("admin", "PATCH", "/users/"+jsonNum(e.users["admin"].ID), `{"disabled":true}`); code != 400 {
			t.Fatalf("admin disabled itself: %d", code)
		}
		if l := e.mustDo("admin", "GET", "/users", "", 200); l["total"] != float64(5) {
			t.Fatalf("users %v", l)
		}
		me := e.mustDo("op1", "GET", "/me", "", 200)
		if me["username"] != "op1" || me["role"] != "operator" || me["via"] != "token" {
			t.Fatalf("me %v", me)
		}
		// Applications: admin deletes an empty one; one with streams is refused.
		app := e.mustDo("admin", "POST", "/applications", `{"name":"empty"}`, 201)
		e.mustDo("admin", "DELETE", "/applications/"+id(app), "", 204)
		apps := e.mustDo("op1", "GET", "/applications", "", 200)
		live := apps["items"].([]any)[0].(map[string]any)
		if code, _ := e.do("admin", "DELETE", "/applications/"+id(live), ""); code != 409 {
			t.Fatalf("delete app in use: %d", code)
		}
		// Delete the stream: configs and tasks go with it.
		e.mustDo("op1", "DELETE", "/streams/"+id(s), "", 204)
		if _, err := e.store.TaskByID(ctx, task.ID); err == nil {
			t.Fatal("task survived its stream")
		}
	})
}

// TestAPISessionPrincipal checks that the API accepts a principal from the
// UI's session authenticator, that a Bearer token takes precedence, and that
// a session error is passed through.
func TestAPISessionPrincipal(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, modelstest.SQLite(t))
	e.srv.SetSessionAuthenticator(func(c *gin.Context) (*auth.Principal, error) {
		ck, err := c.Cookie("sess")
		if err != nil {
			return nil, nil
		}
		if ck != "op2" {
			return nil, httperr.New(http.StatusForbidden, httperr.CodeForbidden, "", "bad CSRF token")
		}
		return &auth.Principal{User: e.users["op2"]}, nil
	})
	send := func(cookie, bearer string) (int, map[string]any) {
		req := httptest.NewRequest("GET", "/api/v1/me", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "sess", Value: cookie})
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	if code, me := send("op2", ""); code != 200 || me["username"] != "op2" || me["via"] != "session" {
		t.Fatalf("session: %d %v", code, me)
	}
	if code, me := send("op2", e.tokens["op1"]); code != 200 || me["username"] != "op1" || me["via"] != "token" {
		t.Fatalf("token over session: %d %v", code, me)
	}
	if code, _ := send("forged", ""); code != 403 {
		t.Fatalf("session error: %d", code)
	}
	if code, _ := send("", ""); code != 401 {
		t.Fatalf("nothing: %d", code)
	}
}

// TestAPINoPartialWrites breaks the audit table, so every change fails at its
// last step, and checks that nothing of the change was kept.
func TestAPINoPartialWrites(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"keep"}`, 201)
		if err := e.store.DB.Exec("ALTER TABLE audit_events RENAME TO audit_events_gone").Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ method, path, body string }{
			{"POST", "/streams", `{"name":"new","app":"newapp"}`},
			{"PATCH", "/streams/" + id(s), `{"name":"renamed","enabled":false}`},
			{"POST", "/streams/" + id(s) + "/rotate-key", ``},
			{"DELETE", "/streams/" + id(s), ``},
			{"POST", "/streams/" + id(s) + "/task-configs", `{"type":"record","name":"r"}`},
		} {
			code, body := e.do("op1", r.method, r.path, r.body)
			if c, _ := errCode(body); code != 500 || c != "internal" {
				t.Fatalf("%s %s: %d %v", r.method, r.path, code, body)
			}
		}
		st, err := e.store.StreamByID(context.Background(), int64(s["id"].(float64)))
		if err != nil || st.Name != "keep" || !st.Enabled || st.PublishKey != s["key"] {
			t.Fatalf("stream changed by failed requests: %+v %v", st, err)
		}
		if _, total, _ := e.store.ListStreams(context.Background(), models.StreamFilter{}); total != 1 {
			t.Fatalf("%d streams after failed create", total)
		}
		if _, err := e.store.ApplicationByName(context.Background(), "newapp"); err == nil {
			t.Fatal("application of a failed create was kept")
		}
		if cfgs, _ := e.store.ListTaskConfigs(context.Background(), st.ID); len(cfgs) != 0 {
			t.Fatalf("task config of a failed create was kept: %v", cfgs)
		}
	})
}
