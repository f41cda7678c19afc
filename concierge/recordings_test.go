package concierge

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portier/portier/concierge/supervisor"
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

// TestScanRecordings follows one record program's segment list: a file is
// queued once the muxer writes the next one (or its program is gone); a
// file overwritten by a segment of the same name is queued once, as the
// later one; when the program is gone, the file its list does not name is
// queued and an empty one removed; the list is deleted once every file
// from it was answered.
func TestScanRecordings(t *testing.T) {
	data, rec := t.TempDir(), t.TempDir()
	c := &Concierge{p: Params{DataDir: data}, log: slog.New(slog.DiscardHandler), lists: map[string]*segList{}, ffmp: "/nonexistent/ffmpeg"}
	prog := progName(5, 2)
	if err := os.MkdirAll(c.segmentDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string, size int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(rec, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line := func(name string, start, end float64) {
		t.Helper()
		f, err := os.OpenFile(c.segmentList(prog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s,%f,%f\n", filepath.Join(rec, name), start, end)
		f.Close()
	}
	queued := func() []string {
		var out []string
		for _, p := range c.recs {
			out = append(out, fmt.Sprintf("%s:%d", p.rec.File, p.rec.Size))
		}
		return out
	}
	loaded := map[string]supervisor.ProcessInfo{prog: {}}

	write("20261203-140000.ts", 100)
	line("20261203-140000.ts", 0, 2)
	c.scanRecordings(loaded)
	if q := queued(); len(q) != 0 {
		t.Fatalf("queued %v while the muxer may still write the file", q)
	}
	write("20261203-140002.ts", 10) // the next segment started
	c.scanRecordings(loaded)
	if q := queued(); !slices.Equal(q, []string{"20261203-140000.ts:100"}) {
		t.Fatalf("queued %v, want the closed file", q)
	}
	if r := c.recs[0].rec; r.TaskID != 5 || r.Epoch != 2 || r.DurationSeconds != 2 {
		t.Fatalf("recording %+v, want task 5 epoch 2, 2 s", r)
	}
	// 140002 closes, and the next segment starts in the same second: the
	// muxer writes 140002 again.
	line("20261203-140002.ts", 2, 2.5)
	c.scanRecordings(loaded)
	write("20261203-140002.ts", 300)
	line("20261203-140002.ts", 2.5, 4.5)
	write("20261203-140004.ts", 40) // left unfinished by a stopped muxer
	write("20261203-140006.ts", 0)  // opened at its last cut, never written
	c.scanRecordings(nil)           // the program is gone
	want := []string{"20261203-140000.ts:100", "20261203-140002.ts:300", "20261203-140004.ts:40"}
	if q := queued(); !slices.Equal(q, want) {
		t.Fatalf("queued %v, want %v", q, want)
	}
	if d := c.recs[1].rec.DurationSeconds; d != 2 {
		t.Errorf("the rewritten file's duration %v, want the later segment's 2 s", d)
	}
	if _, err := os.Stat(filepath.Join(rec, "20261203-140006.ts")); !os.IsNotExist(err) {
		t.Errorf("the empty file is still there (%v)", err)
	}
	if _, err := os.Stat(c.segmentList(prog)); err != nil {
		t.Fatalf("the list was deleted before its files were answered: %v", err)
	}
	for _, p := range c.recs {
		c.answered(p)
	}
	c.recs = nil
	c.scanRecordings(nil)
	if _, err := os.Stat(c.segmentList(prog)); !os.IsNotExist(err) || len(c.lists) != 0 || len(c.recs) != 0 {
		t.Fatalf("after every answer: list %v, %d lists, %d queued; want all gone", err, len(c.lists), len(c.recs))
	}
}
