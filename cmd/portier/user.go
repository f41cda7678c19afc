package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/portier/portier/models"
)

// runUser is `portier user add --username U --role R`, password on stdin.
func runUser(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: portier user add --username U --role admin|operator|viewer [--data-dir D | --database-url URL] (password on stdin)")
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	username := fs.String("username", "", "the new user's name")
	role := fs.String("role", models.RoleOperator, "admin, operator or viewer")
	db := dbFlags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("--username is required")
	}
	pw, err := readPassword(os.Stdin)
	if err != nil {
		return err
	}
	store, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := store.CreateUser(ctx, *username, pw, *role)
	if err != nil {
		return err
	}
	if err := store.Audit(ctx, &models.AuditEvent{Actor: "cli", Action: "user.create", Object: "user/" + u.Username,
		Details: models.MustJSON(map[string]string{"role": u.Role})}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %s user %s\n", u.Role, u.Username)
	return nil
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("give the password on stdin, e.g. `echo \"$PASSWORD\" | portier user add …`")
	}
	return pw, nil
}

// dbOptions are the database flags of the offline commands.
type dbOptions struct{ dataDir, url *string }

func dbFlags(fs *flag.FlagSet) dbOptions {
	return dbOptions{
		dataDir: fs.String("data-dir", "./data", "data directory of `portier run` (SQLite at DATA/portier.db)"),
		url:     fs.String("database-url", "", "postgres://… or a SQLite path (overrides --data-dir)"),
	}
}

func (o dbOptions) open(ctx context.Context) (*models.Store, error) {
	dsn := *o.url
	if dsn == "" {
		if err := os.MkdirAll(*o.dataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		dsn = filepath.Join(*o.dataDir, "portier.db")
	}
	return models.Open(ctx, dsn)
}
