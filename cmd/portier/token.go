package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portier/portier/portier/core"
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
	store, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := store.UserByName(ctx, *username)
	if err != nil {
		return noUser(*username, err)
	}
	var exp *time.Time
	if *expires > 0 {
		t := time.Now().Add(*expires).UTC()
		exp = &t
	}
	tok, _, err := core.New(core.Params{Store: store}).IssueToken(ctx, cliActor, u, *name, strings.Split(*scopes, ","), exp)
	if err != nil {
		return cliErr(err)
	}
	fmt.Fprintln(os.Stdout, tok)
	return nil
}
