package portier

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/httperr"
)

// TestAPITaskURLNetworks: task sources and targets that point at link-local
// or metadata addresses, loopback HTTP or a control plane's internal
// endpoints are refused with 400 naming the field; private camera networks
// and the loopback relay are accepted; --task-url-allow and --task-url-deny
// move the line; a PATCH is checked like a create.
func TestAPITaskURLNetworks(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
		path := "/streams/" + id(s) + "/task-configs"
		n := 0
		post := func(typ, field, u string) (int, map[string]any) {
			n++
			body := `{"type":"` + typ + `","name":"c` + strings.Repeat("x", n) + `","` + field + `":"` + u + `"}`
			return e.do("op1", "POST", path, body)
		}
		refused := []struct{ typ, field, url, says string }{
			{"pull", "source", "http://169.254.169.254/latest/meta-data/x.m3u8", "link-local"},
			{"pull", "source", "rtsp://169.254.1.1/cam", "link-local"},
			{"restream", "target", "rtmp://169.254.169.254/live", "link-local"},
			{"restream", "target", "rtmp://[fe80::1]/live", "link-local"},
			{"restream", "target", "rtmp://[::ffff:169.254.169.254]/live", "link-local"},
			{"pull", "source", "http://metadata.google.internal/computeMetadata/v1/x.m3u8", "metadata"},
			{"pull", "source", "http://0.0.0.0:8080/x.m3u8", "link-local"},
			{"pull", "source", "http://2852039166/x.m3u8", "four decimal numbers"},
			{"pull", "source", "http://0xa9.0xfe.0xa9.0xfe/x.m3u8", "four decimal numbers"},
			{"pull", "source", "http://169.254.43518/x.m3u8", "four decimal numbers"},
			{"pull", "source", "http://127.0.0.1:8080/hls/a.m3u8", "loopback"},
			{"pull", "source", "http://localhost:8080/hls/a.m3u8", "loopback"},
			{"pull", "source", "https://foo.localhost/a.m3u8", "loopback"},
			{"pull", "source", "http://[::1]:8080/a.m3u8", "loopback"},
			{"pull", "source", "http://control.example:8080/internal/v1/directory/live/x.m3u8", "internal endpoints"},
			{"pull", "source", "http://control.example:8080//hooks/srs.m3u8", "internal endpoints"},
			{"pull", "source", "http://control.example:8080/%69nternal/v1/x.m3u8", "internal endpoints"},
		}
		for _, r := range refused {
			code, body := post(r.typ, r.field, r.url)
			c, f := errCode(body)
			if code != 400 || c != httperr.CodeInvalid || f != r.field || !strings.Contains(jsonNum(body), r.says) {
				t.Errorf("%s %s: %d %v, want 400 on %s saying %q", r.typ, r.url, code, body, r.field, r.says)
			}
		}
		for _, r := range []struct{ typ, field, url string }{
			{"pull", "source", "rtsp://10.1.2.3/cam"},
			{"pull", "source", "rtsp://172.16.0.9:554/cam"},
			{"pull", "source", "rtsp://192.168.1.64/Streaming/Channels/101"},
			{"pull", "source", "http://192.168.1.64/hls/a.m3u8"},
			{"pull", "source", "https://cdn.example.com/live/a.m3u8"},
			{"restream", "target", "rtmp://127.0.0.1:1935/live"},
			{"restream", "target", "rtmp://localhost/live"},
			{"restream", "target", "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop-qrst"},
			{"restream", "target", "srt://[fd12::1]:9000"},
		} {
			if code, body := post(r.typ, r.field, r.url); code != 201 {
				t.Errorf("%s %s: %d %v, want 201", r.typ, r.url, code, body)
			}
		}
		// A PATCH may not move a target into a refused network.
		cfg := e.mustDo("op1", "POST", path, `{"type":"restream","name":"yt","target":"rtmp://10.0.0.5/live"}`, 201)
		code, body := e.do("op1", "PATCH", path+"/"+id(cfg), `{"target":"rtmp://169.254.169.254/live"}`)
		if _, f := errCode(body); code != 400 || f != "target" {
			t.Fatalf("patch to link-local: %d %v", code, body)
		}
	})
}

// TestAPITaskURLOptions: --task-url-allow opens a built-in denial,
// --task-url-deny closes a private network and beats an allow.
func TestAPITaskURLOptions(t *testing.T) {
	t.Parallel()
	st := modelstest.SQLite(t)
	e := newAPIEnv(t, st)
	allow, _ := models.ParseNetworks("169.254.10.0/24,10.9.0.0/16")
	deny, _ := models.ParseNetworks("10.9.8.0/24,192.168.0.0/16")
	srv, err := New(Params{Store: st, Logger: slog.New(slog.DiscardHandler), Security: SecurityParams{TaskURLs: models.TaskURLPolicy{Allow: allow, Deny: deny}}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.h = srv, srv.Handler()
	s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
	path := "/streams/" + id(s) + "/task-configs"
	for i, tc := range []struct {
		url  string
		want int
	}{
		{"rtsp://169.254.10.7/cam", 201},
		{"rtsp://169.254.169.254/cam", 400},
		{"rtsp://10.9.1.1/cam", 201},
		{"rtsp://10.9.8.1/cam", 400},
		{"rtsp://192.168.1.64/cam", 400},
		{"rtsp://10.1.1.1/cam", 201},
	} {
		code, body := e.do("op1", "POST", path, `{"type":"pull","name":"p`+strings.Repeat("x", i)+`","source":"`+tc.url+`"}`)
		if code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.url, code, body, tc.want)
		}
	}
	if _, err := models.ParseNetworks("10.0.0.1/8"); err == nil {
		t.Error("host bits accepted")
	}
	if p, err := models.ParseNetworks(" 10.0.0.1 , ::1 "); err != nil || len(p) != 2 || p[0] != netip.MustParsePrefix("10.0.0.1/32") {
		t.Errorf("single addresses: %v %v", p, err)
	}
}

// TestStoredTaskURLRefusedAtCompile: a config saved before the rule (here
// written behind the API's back) still cannot reach a link-local address:
// its task fails to compile with the reason.
func TestStoredTaskURLRefusedAtCompile(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		pull := e.addConfig(t, models.TypePull, "cam", `{"source":"rtsp://10.0.0.1/s1"}`, true)
		if err := e.store.DB.Exec("UPDATE task_configs SET spec = ?, version = version + 1 WHERE id = ?",
			`{"source":"rtsp://169.254.169.254/s1"}`, pull.ID).Error; err != nil {
			t.Fatal(err)
		}
		if err := e.srv.lv.ConfigChanged(ctx, pull.ID); err != nil {
			t.Fatal(err)
		}
		var failed bool
		for _, tk := range e.tasks(t) {
			if tk.ConfigID != nil && *tk.ConfigID == pull.ID && tk.State == models.TaskFailed && strings.Contains(tk.LastError, "link-local") {
				failed = true
			}
		}
		if !failed {
			t.Fatalf("tasks: %+v", e.tasks(t))
		}
	})
}
