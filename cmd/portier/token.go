package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/models"
)

// runToken is `portier token add --username U [--scopes read,write]`: it
// prints a new API token on stdout (the only time it is shown).
func runToken(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: portier token add --username U [--scopes read,write] [--name N] [--expires 720h] [--data-dir D | --database-url URL]")
	}
	fs := flag.NewFlagSet("token add", flag.ContinueOnError)
	username := fs.String("username", "", "the user the token acts as")
	scopes := fs.String("scopes", "read,write", "comma-separated: read, write, admin (admin needs an admin user)")
	name := fs.String("name", "cli", "a label to recognise the token by")
	expires := fs.Duration("expires", 0, "lifetime, e.g. 720h (0: never expires)")
	db := dbFlags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("--username is required")
	}
	sc, err := models.NormalizeScopes(strings.Split(*scopes, ","))
	if err != nil {
		return err
	}
	store, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := store.UserByName(ctx, *username)
	if err != nil {
		return err
	}
	for _, s := range sc {
		if s == models.ScopeAdmin && u.Role != models.RoleAdmin {
			return fmt.Errorf("user %s is a %s: only admins' tokens may have the admin scope", u.Username, u.Role)
		}
	}
	var exp *time.Time
	if *expires > 0 {
		t := time.Now().Add(*expires).UTC()
		exp = &t
	}
	tok, row, err := store.CreateToken(ctx, u.ID, *name, sc, exp)
	if err != nil {
		return err
	}
	if err := store.Audit(ctx, &models.AuditEvent{Actor: "cli", Action: "token.create", Object: fmt.Sprintf("token/%d", row.ID),
		Details: models.MustJSON(map[string]any{"user": u.Username, "scopes": sc, "prefix": row.Prefix})}); err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, tok)
	return nil
}
