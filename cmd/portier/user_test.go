package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// newDatabase makes the database `portier run` would (the offline commands
// never create one).
func newDatabase(t *testing.T, dsn string) {
	t.Helper()
	s, err := models.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestOfflineCommandsNeedADatabase: user and token commands on a data
// directory without a database say so, name the path and `portier run`,
// and create nothing (no file, no directory).
func TestOfflineCommandsNeedADatabase(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(base, "missing", "data")
	for _, dir := range []string{empty, missing} {
		for _, run := range []struct {
			name string
			fn   func() error
		}{
			{"token add", func() error { return runToken(ctx, []string{"add", "--username", "admin", "--data-dir", dir}) }},
			{"user add", func() error {
				return runUser(ctx, []string{"add", "--username", "op", "--role", "operator", "--data-dir", dir})
			}},
			{"user passwd", func() error { return runUser(ctx, []string{"passwd", "--username", "admin", "--data-dir", dir}) }},
			{"user list", func() error { return runUser(ctx, []string{"list", "--data-dir", dir}) }},
		} {
			_, err := withStdio(t, "a-good-password\n", run.fn)
			db := filepath.Join(dir, "portier.db")
			if err == nil || !strings.Contains(err.Error(), "no Portier database at "+db) || !strings.Contains(err.Error(), "portier run") {
				t.Errorf("%s in %s: %v", run.name, dir, err)
			}
		}
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("files created in the empty directory: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(base, "missing")); !os.IsNotExist(err) {
		t.Fatalf("a missing --data-dir was created: %v", err)
	}
	// The same for a SQLite --database-url.
	_, err := withStdio(t, "", func() error {
		return runToken(ctx, []string{"add", "--username", "admin", "--database-url", filepath.Join(base, "nope.db")})
	})
	if err == nil || !strings.Contains(err.Error(), "no Portier database") || !strings.Contains(err.Error(), "portier serve") {
		t.Fatalf("--database-url without a database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "nope.db")); !os.IsNotExist(err) {
		t.Fatal("a database was created for --database-url")
	}
}

// TestUserPasswdAndList runs user add, passwd and list on SQLite and on
// Postgres: passwd ends the user's sessions and is audited; add writes
// the user and its audit event together or not at all.
func TestUserPasswdAndList(t *testing.T) {
	ctx := context.Background()
	dbs := map[string][]string{}
	dir := t.TempDir()
	newDatabase(t, filepath.Join(dir, "portier.db"))
	dbs["sqlite"] = []string{"--data-dir", dir}
	if dsn, ok := modelstest.Schema(t); ok {
		newDatabase(t, dsn)
		dbs["postgres"] = []string{"--database-url", dsn}
	}
	for name, dbArgs := range dbs {
		t.Run(name, func(t *testing.T) {
			args := func(a ...string) []string { return append(a, dbArgs...) }
			if _, err := withStdio(t, "first-password\n", func() error {
				return runUser(ctx, args("add", "--username", "alice", "--role", "operator"))
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := withStdio(t, "x\n", func() error {
				return runUser(ctx, args("add", "--username", "bob", "--role", "viewer"))
			}); err == nil || !strings.Contains(err.Error(), "password must have 8 to 72 characters") {
				t.Fatalf("short password: %v", err)
			}
			store := openArgs(t, dbArgs)
			u, err := store.UserByName(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := store.CreateSession(ctx, u.ID, "test", "127.0.0.1", time.Hour); err != nil {
				t.Fatal(err)
			}
			secret, _, err := store.CreateSession(ctx, u.ID, "test", "127.0.0.1", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := withStdio(t, "second-password\n", func() error {
				return runUser(ctx, args("passwd", "--username", "alice"))
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Authenticate(ctx, "alice", "second-password"); err != nil {
				t.Fatalf("new password: %v", err)
			}
			if _, _, err := store.SessionBySecret(ctx, secret, time.Hour); err == nil {
				t.Fatal("a session survived user passwd")
			}
			evs, _, err := store.ListAudit(ctx, models.AuditFilter{Object: "user/alice"})
			if err != nil || len(evs) != 2 || evs[0].Action != "user.password" || evs[0].Actor != "cli" || evs[1].Action != "user.create" {
				t.Fatalf("audit: %+v %v", evs, err)
			}
			if _, err := withStdio(t, "second-password\n", func() error {
				return runUser(ctx, args("passwd", "--username", "nobody"))
			}); err == nil || !strings.Contains(err.Error(), `no user "nobody"`) {
				t.Fatalf("passwd of a missing user: %v", err)
			}
			out, err := withStdio(t, "", func() error { return runUser(ctx, args("list")) })
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "USERNAME ROLE DISABLED CREATED" ||
				!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "alice operator false "+u.CreatedAt.UTC().Format("2006-01-02")) {
				t.Fatalf("list:\n%s", out)
			}
			// user add writes the user and its audit event in one
			// transaction: without the audit table, no user is left.
			if err := store.DB.Exec("ALTER TABLE audit_events RENAME TO audit_events_gone").Error; err != nil {
				t.Fatal(err)
			}
			if _, err := withStdio(t, "carol-password\n", func() error {
				return runUser(ctx, args("add", "--username", "carol", "--role", "viewer"))
			}); err == nil {
				t.Fatal("user add without an audit table succeeded")
			}
			if _, err := store.UserByName(ctx, "carol"); err == nil {
				t.Fatal("user add left a user without its audit event")
			}
			if err := store.DB.Exec("ALTER TABLE audit_events_gone RENAME TO audit_events").Error; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func openArgs(t *testing.T, dbArgs []string) *models.Store {
	t.Helper()
	dsn := dbArgs[1]
	if dbArgs[0] == "--data-dir" {
		dsn = filepath.Join(dsn, "portier.db")
	}
	s, err := models.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
