package models

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/glebarez/go-sqlite" // the driver behind glebarez/sqlite
	"github.com/pressly/goose/v3"

	"github.com/portier/portier/migrations"
)

// Migration 00008 renames the audit objects written before one scheme.
func TestMigrationAuditObjects(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{
		"stream:12":              "stream/12",
		"stream:live/cam-1":      "path/live/cam-1",
		"node:origin-a":          "node/origin-a",
		"stream/3":               "stream/3",
		"stream/3/task-config/4": "stream/3/task-config/4",
		"user/alice":             "user/alice",
	}
	for obj := range before {
		if _, err := db.ExecContext(ctx, `INSERT INTO audit_events (time, actor, action, object, result) VALUES (CURRENT_TIMESTAMP, 'x', 'y', ?, 'ok')`, obj); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.UpTo(ctx, 8); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT object FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		got[o] = true
	}
	for old, want := range before {
		if !got[want] {
			t.Errorf("%q did not become %q (have %v)", old, want, got)
		}
	}
}
