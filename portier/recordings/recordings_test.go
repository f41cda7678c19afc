package recordings

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestListRecordings: segment files sorted by the start time in their
// names, durations up to the next segment (the newest: to its last
// write), other files ignored, a missing directory an empty list.
func TestListRecordings(t *testing.T) {
	if got, err := List(filepath.Join(t.TempDir(), "none")); err != nil || len(got) != 0 {
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
	got, err := List(dir)
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

// Only a plain segment file name of dir is a recording's path.
func TestPath(t *testing.T) {
	for _, bad := range []string{"", "../x.mp4", "a/b.mp4", ".hidden.mp4", "notes.txt", "x.mp4/..", "/etc/passwd"} {
		if _, err := Path("/rec", bad); err == nil {
			t.Errorf("Path(%q) accepted", bad)
		}
	}
	if p, err := Path("/rec", "20261121-100000.mp4"); err != nil || p != "/rec/20261121-100000.mp4" {
		t.Errorf("Path = %q, %v", p, err)
	}
}

// File finds existing segment files only.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "20261121-100000.mp4"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "20261121-100002.ts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := File(dir, "20261121-100000.mp4"); err != nil || p != filepath.Join(dir, "20261121-100000.mp4") {
		t.Errorf("File = %q, %v", p, err)
	}
	for _, name := range []string{"20261121-100001.mp4", "20261121-100002.ts"} {
		if _, err := File(dir, name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("File(%q) = %v, want not exist", name, err)
		}
	}
	if _, err := File(dir, "../x.mp4"); !errors.Is(err, ErrBadName) {
		t.Errorf("File(../x.mp4) = %v", err)
	}
	if _, err := File("", "20261121-100000.mp4"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("File without a directory = %v", err)
	}
}
