package portier

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/hlssign"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/hlsrewrite"
)

// memOrigin serves one master and media playlist for any stream.
type memOrigin struct{}

func (memOrigin) Fetch(_ context.Context, p string) ([]byte, error) {
	if strings.HasSuffix(p, "/master.m3u8") {
		return []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv0/index.m3u8\n"), nil
	}
	return []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\nseg_1.ts\n"), nil
}

// TestHLSMount: the rewriter mounted on the control plane serves
// /hls/APP/NAME/ (the app "s" as /hls/~s/), play.hls appears on GET of a
// stream with an enabled HLS config, carries a play token unless the
// stream's hls_public is set (PATCH), and hls_public is stored on both
// databases.
func TestHLSMount(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		ctx := context.Background()
		if _, err := e.store.RegisterNode(ctx, models.Node{Name: "edge-1", Role: models.NodeRoleCDNEdge, HTTPAddress: "127.0.0.1:9", Capacity: 1000}, time.Now()); err != nil {
			t.Fatal(err)
		}
		rw, err := hlsrewrite.New(hlsrewrite.Params{Directory: e.srv.HLSDirectory(), Origin: memOrigin{}, Secret: hlssign.Secret("tok"),
			NoProbe: true, AliveWindow: time.Minute, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := rw.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		s := e.mustDo("op1", "POST", "/streams", `{"name":"cam","app":"s"}`, 201)
		if s["hls_public"] != false {
			t.Fatalf("a new stream's hls_public: %v", s["hls_public"])
		}
		base := "/streams/" + id(s)
		if p := e.mustDo("op1", "GET", base, "", 200)["play"].(map[string]any); p["hls"] != nil {
			t.Fatalf("play.hls without a rewriter: %v", p["hls"])
		}
		e.srv.MountHLS(rw, time.Hour)
		if p := e.mustDo("op1", "GET", base, "", 200)["play"].(map[string]any); p["hls"] != nil {
			t.Fatalf("play.hls without an HLS config: %v", p["hls"])
		}
		e.mustDo("op1", "POST", base+"/task-configs", `{"type":"hls","name":"abr","renditions":[{"preset":"480p"}]}`, 201)
		play, _ := e.mustDo("op1", "GET", base, "", 200)["play"].(map[string]any)["hls"].(string)
		if !strings.HasPrefix(play, "http://example.com/hls/~s/cam/master.m3u8?token="+id(s)+".") {
			t.Fatalf("play.hls = %q", play)
		}
		get := func(u string) (int, string) {
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, u, nil))
			b, _ := io.ReadAll(w.Result().Body)
			return w.Code, string(b)
		}
		path := strings.TrimPrefix(play, "http://example.com")
		if code, body := get(path); code != 200 || !strings.Contains(body, "#EXT-X-CONTENT-STEERING:") || !strings.Contains(body, "/hls/~s/cam/v0/index.m3u8?pw=0&token=") {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		if code, body := get("/hls/~s/cam/master.m3u8"); code != 403 || !strings.Contains(body, "play token") {
			t.Fatalf("without the token: %d %s", code, body)
		}
		if code, body := get("/hls/s/cam/master.m3u8"); code != 404 || !strings.Contains(body, "/hls/~s/NAME/master.m3u8") {
			t.Fatalf("/hls/s/cam: %d %s", code, body)
		}
		// A public stream: no token in play.hls, none needed.
		s2 := e.mustDo("op1", "POST", "/streams", `{"name":"open"}`, 201)
		if got := e.mustDo("op1", "PATCH", "/streams/"+id(s2), `{"hls_public":true}`, 200); got["hls_public"] != true {
			t.Fatalf("PATCH hls_public: %v", got["hls_public"])
		}
		e.mustDo("op1", "POST", "/streams/"+id(s2)+"/task-configs", `{"type":"hls","name":"abr","renditions":[{"preset":"480p"}]}`, 201)
		play2 := e.mustDo("op1", "GET", "/streams/"+id(s2), "", 200)["play"].(map[string]any)["hls"]
		if play2 != "http://example.com/hls/live/open/master.m3u8" {
			t.Fatalf("public play.hls = %v", play2)
		}
		if code, body := get("/hls/live/open/v0/index.m3u8"); code != 200 || !strings.Contains(body, "http://127.0.0.1:9/hls/s/"+id(s2)+"/v0/seg_1.ts?exp=") {
			t.Fatalf("public media playlist: %d\n%s", code, body)
		}
	})
}
