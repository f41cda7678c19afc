package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServeRefusesSecondSQLiteReplica(t *testing.T) {
	db := filepath.Join(t.TempDir(), "portier.db")
	if _, _, err := openControlStore(context.Background(), db, 2); err == nil || !strings.Contains(err.Error(), "Postgres") {
		t.Fatalf("replicas=2 on SQLite: %v", err)
	}
	t.Setenv("PORTIER_ADMIN_PASSWORD", "first-admin-password")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--database-url", db, "--http-addr", addr, "--cluster-token", "ct"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A second replica on the same file is refused with a clear message.
	err := runServe(context.Background(), []string{"--database-url", db, "--http-addr", freeAddr(t), "--cluster-token", "ct"})
	if err == nil || !strings.Contains(err.Error(), "another portier control plane already uses this SQLite database") {
		t.Fatalf("second replica: %v", err)
	}
	// PORTIER_REPLICAS is read too.
	t.Setenv("PORTIER_REPLICAS", "3")
	err = runServe(context.Background(), []string{"--database-url", db, "--http-addr", freeAddr(t), "--cluster-token", "ct"})
	if err == nil || !strings.Contains(err.Error(), "one control-plane replica only") {
		t.Fatalf("PORTIER_REPLICAS=3: %v", err)
	}
	// The first admin exists with the given password and the API answers.
	s, err := models.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Authenticate(context.Background(), "admin", "first-admin-password"); err != nil {
		t.Fatalf("first admin: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/api/v1/streams")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated API: %d", resp.StatusCode)
	}
}

func TestServeLockReleased(t *testing.T) {
	db := filepath.Join(t.TempDir(), "portier.db")
	s, release, err := openControlStore(context.Background(), db, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openControlStore(context.Background(), db, 1); err == nil {
		t.Fatal("second open while locked succeeded")
	}
	s.Close()
	release()
	s, release, err = openControlStore(context.Background(), db, 1)
	if err != nil {
		t.Fatalf("open after release: %v", err)
	}
	s.Close()
	release()
}

// withStdio runs fn with stdin fed from in, returning what it wrote to stdout.
func withStdio(t *testing.T, in string, fn func() error) (string, error) {
	t.Helper()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	oldIn, oldOut := os.Stdin, os.Stdout
	os.Stdin, os.Stdout = inR, outW
	defer func() { os.Stdin, os.Stdout = oldIn, oldOut }()
	go func() { io.WriteString(inW, in); inW.Close() }()
	outc := make(chan string, 1)
	go func() { b, _ := io.ReadAll(outR); outc <- string(b) }()
	err := fn()
	outW.Close()
	return <-outc, err
}

func TestUserAndTokenCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	newDatabase(t, filepath.Join(dir, "portier.db"))
	if _, err := withStdio(t, "op-password\n", func() error {
		return runUser(ctx, []string{"add", "--username", "op", "--role", "operator", "--data-dir", dir})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := withStdio(t, "", func() error {
		return runUser(ctx, []string{"add", "--username", "x", "--data-dir", dir})
	}); err == nil || !strings.Contains(err.Error(), "stdin") {
		t.Fatalf("empty password: %v", err)
	}
	out, err := withStdio(t, "", func() error {
		return runToken(ctx, []string{"add", "--username", "op", "--scopes", "read", "--data-dir", dir})
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	if _, err := withStdio(t, "", func() error {
		return runToken(ctx, []string{"add", "--username", "op", "--scopes", "admin", "--data-dir", dir})
	}); err == nil {
		t.Fatal("admin scope for an operator accepted")
	}
	s, err := models.Open(ctx, filepath.Join(dir, "portier.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	row, u, err := s.TokenAuth(ctx, tok)
	if err != nil || u.Username != "op" || row.Scopes != "read" {
		t.Fatalf("token %q: %+v %+v %v", tok, row, u, err)
	}
	if _, err := s.Authenticate(ctx, "op", "op-password"); err != nil {
		t.Fatalf("password from stdin: %v", err)
	}
}
