package contract

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/portier/portier/models/modelstest"
)

// TestHooksNeverServerErrorOnBadInput throws malformed and hostile bodies at
// every hook endpoint: each answer must be a 2xx or 4xx, never a 5xx.
func TestHooksNeverServerErrorOnBadInput(t *testing.T) {
	e := newEnv(t, modelstest.SQLite(t), envOpts{})
	bodies := []string{
		"", "null", "0", "[]", "{}", `"str"`, "{", `{"action":null}`, `{"action":1}`,
		`{"action":"on_publish","app":1,"stream":[]}`,
		`{"action":"on_publish","app":"live","stream":"\u0000"}`,
		`{"action":"on_publish","app":"../..","stream":"livestream","param":"?key=%zz"}`,
		`{"action":"on_publish","app":"live","stream":"` + strings.Repeat("x", 4096) + `"}`,
		`{"action":"publish","path":"///","query":"key=%"}`,
		`{"action":"publish","path":"live/livestream","query":"key=` + strings.Repeat("k", 10000) + `"}`,
		`{"action":"read","path":"\ud800"}`,
		`{"node":"","app":"live","name":"x"}`,
		`{"node":"n","app":"live","name":"livestream","query":"key=a&key=b;c"}`,
		"call=publish&app=live&name=%00", "call=publish&name=&app=", "call=update", "call=publish&app=live&name=a/b",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		bodies = append(bodies, string(b))
	}
	endpoints := []struct{ path, ctype string }{
		{withToken("/hooks/srs"), "application/json"},
		{withToken("/hooks/nginx-rtmp"), "application/x-www-form-urlencoded"},
		{withToken("/hooks/mediamtx"), "application/json"},
		{withToken("/hooks/mediamtx/unpublish"), "application/json"},
		{withToken("/hooks/mediamtx/ready"), "application/x-www-form-urlencoded"},
	}
	native := []string{"/internal/v1/publish/authorize", "/internal/v1/publish/done", "/internal/v1/play/authorize",
		"/internal/v1/nodes/register", "/internal/v1/nodes/x/heartbeat"}
	for _, b := range bodies {
		for _, ep := range endpoints {
			if r := e.do("POST", ep.path, ep.ctype, b); r.status >= 500 || r.status < 200 {
				t.Errorf("%s %q: %d %s", ep.path, trunc(b), r.status, r.body)
			}
		}
		for _, p := range native {
			if r := e.native(p, rawJSON(b)); r.status >= 500 {
				t.Errorf("%s %q: %d %s", p, trunc(b), r.status, r.body)
			}
		}
	}
}

// rawJSON makes e.native send a body as is.
type rawJSON string

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
