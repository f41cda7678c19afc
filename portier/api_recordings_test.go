package portier

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
)

// TestAPIRecordings: the route lists a stream's segments to its owner, hides
// other operators' streams (404), and says what to configure without a
// record directory (409).
func TestAPIRecordings(t *testing.T) {
	e := newAPIEnv(t, modelstest.SQLite(t))
	s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
	path := "/streams/" + id(s) + "/recordings"
	code, body := e.do("op1", "GET", path, "")
	if c, _ := errCode(body); code != 409 || c != httperr.CodeConflict {
		t.Fatalf("without a record dir: %d %v", code, body)
	}

	// The same with a record directory (a control plane started with
	// --record-dir).
	rec := t.TempDir()
	e = newAPIEnvWith(t, modelstest.SQLite(t), func(p *Params) { p.Live.Compile.RecordDir = rec })
	s = e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
	path = "/streams/" + id(s) + "/recordings"
	dir := compile.RecordingDir(rec, int64(s["id"].(float64)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"20261121-100000.ts", "20261121-100010.ts", "20261121-100020.ts"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustDo("op1", "GET", path+"?limit=2", "", 200)
	items, _ := out["items"].([]any)
	if jsonNum(out["total"]) != "3" || len(items) != 2 || items[0].(map[string]any)["name"] != "20261121-100020.ts" ||
		items[1].(map[string]any)["duration_seconds"] != float64(10) || out["next_offset"] == nil {
		t.Fatalf("recordings page: %v", out)
	}
	e.mustDo("op2", "GET", path, "", 404)
	e.mustDo("", "GET", path, "", 401)
}

// TestAPIRecordingsKeyedByStream: a stream that reuses a deleted stream's
// name (as another owner) lists none of the old stream's files, and files
// left under the old APP/NAME layout are not listed either.
func TestAPIRecordingsKeyedByStream(t *testing.T) {
	t.Parallel()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			rec := t.TempDir()
			e := newAPIEnvWith(t, n.Store, func(p *Params) { p.Live.Compile.RecordDir = rec })
			old := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
			dir := compile.RecordingDir(rec, int64(old["id"].(float64)))
			legacy := filepath.Join(rec, "live", "cam1")
			for _, d := range []string{dir, legacy} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "20261121-100000.mp4"), []byte("op1's secret"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := e.mustDo("op1", "GET", "/streams/"+id(old)+"/recordings", "", 200)
			if jsonNum(out["total"]) != "1" {
				t.Fatalf("owner's recordings: %v", out)
			}
			e.mustDo("op1", "DELETE", "/streams/"+id(old), "", 204)
			reused := e.mustDo("op2", "POST", "/streams", `{"name":"cam1"}`, 201)
			if id(reused) == id(old) {
				t.Fatalf("stream id %s reused", id(old))
			}
			out = e.mustDo("op2", "GET", "/streams/"+id(reused)+"/recordings", "", 200)
			if items, _ := out["items"].([]any); jsonNum(out["total"]) != "0" || len(items) != 0 {
				t.Fatalf("the new stream lists the old owner's recordings: %v", out)
			}
			// The deleted stream's recordings are gone from the API with it.
			e.mustDo("op1", "GET", "/streams/"+id(old)+"/recordings", "", 404)
		})
	}
}
