package portier

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		e.mustDo("op1", "POST", "/streams", `{"name":"m"}`, 201)
		e.store.DB.Exec("UPDATE streams SET live = ? WHERE name = ?", true, "m")
		if _, err := e.store.RegisterNode(context.Background(), models.Node{Name: "o1", Role: "origin"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		get := func(path string) (int, string) {
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			b, _ := io.ReadAll(w.Body)
			return w.Code, string(b)
		}
		if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
			t.Fatalf("healthz %d %s", code, body)
		}
		if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"ready"`) {
			t.Fatalf("readyz %d %s", code, body)
		}
		code, body := get("/metrics")
		for _, want := range []string{
			`portier_http_requests_total{method="POST",route="/api/v1/streams",status="201"} 1`,
			`portier_live_streams 1`,
			`portier_database_up 1`,
			`portier_nodes{role="origin",state="alive"} 1`,
		} {
			if code != 200 || !strings.Contains(body, want) {
				t.Fatalf("metrics lack %q (status %d)", want, code)
			}
		}
		// A closed database is not ready, but the process is healthy.
		e.store.Close()
		if code, _ := get("/readyz"); code != 503 {
			t.Fatalf("readyz with closed database: %d", code)
		}
		if code, _ := get("/healthz"); code != 200 {
			t.Fatalf("healthz with closed database: %d", code)
		}
	})
}
