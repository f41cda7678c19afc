package portier

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/httperr"
)

// TestListRecordings: segment files sorted by the start time in their
// names, durations up to the next segment (the newest: to its last
// write), other files ignored, a missing directory an empty list.
func TestListRecordings(t *testing.T) {
	if got, err := listRecordings(filepath.Join(t.TempDir(), "none")); err != nil || len(got) != 0 {
		t.Fatalf("missing dir: %v %v", got, err)
	}
	dir := t.TempDir()
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local)
	for i, name := range []string{"20261121-100004.mp4", "20261121-100000.mp4", "20261121-100002.mp4", "notes.txt", "20261121-100006.tmp"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 100*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.ts"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The newest segment was last written 3.5 s after it started.
	if err := os.Chtimes(filepath.Join(dir, "20261121-100004.mp4"), time.Now(), start.Add(7500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, err := listRecordings(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		size int64
		at   time.Duration
		dur  float64
	}{
		{"20261121-100000.mp4", 200, 0, 2},
		{"20261121-100002.mp4", 300, 2 * time.Second, 2},
		{"20261121-100004.mp4", 100, 4 * time.Second, 3.5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d recordings %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Size != w.size || !g.StartTime.Equal(start.Add(w.at)) || g.DurationSeconds != w.dur || g.Format != "mp4" {
			t.Errorf("recording %d: %+v, want %s size %d start +%v duration %.1f", i, g, w.name, w.size, w.at, w.dur)
		}
	}
}

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

	rec := t.TempDir()
	e.srv.p.Live.Compile.RecordDir = rec
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
	forEachStore(t, func(t *testing.T, e *apiEnv) {
		rec := t.TempDir()
		e.srv.p.Live.Compile.RecordDir = rec
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

func TestOpenAPITaskConfigLabels(t *testing.T) {
	doc := buildOpenAPI()
	schemas := doc["components"].(obj)["schemas"].(obj)
	p := schemas["TaskConfig"].(obj)["properties"].(obj)
	if _, ok := p["labels"]; !ok {
		t.Fatal("TaskConfig schema has no labels")
	}
	if _, ok := schemas["Recording"]; !ok {
		t.Fatal("no Recording schema")
	}
}
