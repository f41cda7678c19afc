package models

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A database path with "#" or "%" in it is opened where it is: SQLite's
// URI syntax would otherwise end the path at "#" and decode "%HH".
func TestOpenSQLitePathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run#2 100%25")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portier.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at %s: %v", path, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("files beside the directory: %v", entries)
	}
}
