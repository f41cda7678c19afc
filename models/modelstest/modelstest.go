// Package modelstest opens fresh control-plane stores for tests: a SQLite
// file in t.TempDir() and a private schema in the Postgres at
// PORTIER_TEST_POSTGRES_URL, so parallel test packages never collide.
package modelstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/portier/portier/models"
)

// Importing modelstest lowers bcrypt's cost for new password hashes in
// the test binary (models.PasswordCost): a sign-in under the race detector
// costs 9 ms of CPU instead of 0.7 s. The binaries keep the default
// (media/archtest: none of them imports modelstest).
func init() { models.PasswordCost = bcrypt.MinCost }

// DefaultPostgresURL is used when PORTIER_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Named is a store with the name of its dialect, for t.Run.
type Named struct {
	Name  string
	Store *models.Store
}

// Stores returns a fresh SQLite store and a fresh Postgres store. When
// Postgres is unreachable the test fails if CI=true and otherwise skips the
// Postgres half (only SQLite is returned, and the reason is logged).
func Stores(t testing.TB) []Named {
	t.Helper()
	out := []Named{{Name: "sqlite", Store: SQLite(t)}}
	if pg := Postgres(t); pg != nil {
		out = append(out, Named{Name: "postgres", Store: pg})
	}
	return out
}

// SQLite opens a fresh store in t.TempDir().
func SQLite(t testing.TB) *models.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := models.Open(ctx, filepath.Join(t.TempDir(), "portier.db"))
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresURL is the server the tests use.
func PostgresURL() string {
	if u := os.Getenv("PORTIER_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// Postgres opens a fresh store in a new schema of the test Postgres, dropped
// at cleanup. It returns nil (after t.Skip-like logging) when Postgres is
// unreachable outside CI; in CI (CI=true) that is a test failure.
func Postgres(t testing.TB) *models.Store {
	t.Helper()
	dsn, ok := Schema(t)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := models.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Schema creates a private schema in the test Postgres and returns a DSN
// whose connections use it (search_path), dropping it at cleanup. ok is false
// when Postgres is unreachable and CI is not set.
func Schema(t testing.TB) (dsn string, ok bool) {
	t.Helper()
	base := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres at %s unreachable (CI=true requires it): %v", base, err)
		}
		t.Logf("postgres at %s unreachable, testing SQLite only: %v", base, err)
		return "", false
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse PORTIER_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), true
}
