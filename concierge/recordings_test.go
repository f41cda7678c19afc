package concierge

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWithSegmentList(t *testing.T) {
	rec := []string{"-i", "rtmp://r/live/x", "-f", "segment", "-segment_time", "2", "-strftime", "1", "/rec/stream.1/%Y%m%d-%H%M%S.ts"}
	got := withSegmentList("record", "/data/segments/task-3-e1.csv", rec)
	want := []string{"-i", "rtmp://r/live/x", "-f", "segment", "-segment_time", "2", "-strftime", "1",
		"-segment_list", "/data/segments/task-3-e1.csv", "-segment_list_type", "csv", "-segment_list_entry_prefix", "/rec/stream.1/",
		"/rec/stream.1/%Y%m%d-%H%M%S.ts"}
	if !slices.Equal(got, want) {
		t.Fatalf("record args:\n got %q\nwant %q", got, want)
	}
	if rec[len(rec)-1] != "/rec/stream.1/%Y%m%d-%H%M%S.ts" || len(rec) != 9 {
		t.Fatalf("the description's arguments were changed: %q", rec)
	}
	for _, tc := range []struct {
		typ  string
		args []string
	}{
		{"restream", []string{"-i", "in", "-f", "flv", "rtmp://out"}},
		{"record", []string{"-i", "in", "-f", "segment", "-segment_list", "/x.csv", "out.ts"}}, // has its own list
		{"record", []string{"out.ts"}},
	} {
		if got := withSegmentList(tc.typ, "/l.csv", tc.args); !slices.Equal(got, tc.args) {
			t.Errorf("%s %q: changed to %q", tc.typ, tc.args, got)
		}
	}
}

func TestParseProg(t *testing.T) {
	for _, tc := range []struct {
		name      string
		id, epoch int64
		ok        bool
	}{
		{progName(12, 3), 12, 3, true},
		{"task-1-e0", 1, 0, true},
		{"task-x-e1", 0, 0, false},
		{"other-1-e1", 0, 0, false},
		{"task-1", 0, 0, false},
	} {
		id, epoch, ok := parseProg(tc.name)
		if ok != tc.ok || (ok && (id != tc.id || epoch != tc.epoch)) {
			t.Errorf("parseProg(%q) = %d, %d, %v", tc.name, id, epoch, ok)
		}
	}
}

// TestClosedFile: a closed file's name, size, and the start time its name
// says (local time, as strftime).
func TestClosedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "20261203-140502.ts")
	if err := os.WriteFile(p, make([]byte, 1234), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := closedFile(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 3, 14, 5, 2, 0, time.Local).UTC()
	if rec.File != "20261203-140502.ts" || rec.Size != 1234 || rec.DurationSeconds < 1.999 || rec.DurationSeconds > 2.001 || !rec.StartTime.Equal(start) {
		t.Fatalf("closedFile = %+v; want 20261203-140502.ts, 1234 bytes, 2 s from %s", rec, start)
	}
	if _, err := closedFile(filepath.Join(dir, "gone.ts"), 2); err == nil {
		t.Fatal("a removed file was measured")
	}
}
