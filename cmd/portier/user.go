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
	"text/tabwriter"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
)

const userUsage = `usage:
  portier user add --username U --role admin|operator|viewer [--data-dir D | --database-url URL]   (password on stdin)
  portier user passwd --username U [--data-dir D | --database-url URL]                              (password on stdin; ends U's sessions)
  portier user list [--data-dir D | --database-url URL]`

// cliActor is who the CLI's changes are audited as.
var cliActor = models.Actor{Name: "cli"}

// runUser is `portier user add|passwd|list`. Every change goes through the
// same write path as the API and the UI (core.CreateUser, core.SetPassword:
// the user and its audit event in one transaction).
func runUser(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	switch args[0] {
	case "add":
		return runUserAdd(ctx, args[1:])
	case "passwd":
		return runUserPasswd(ctx, args[1:])
	case "list":
		return runUserList(ctx, args[1:])
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], userUsage)
}

func runUserAdd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	username := fs.String("username", "", "the new user's name")
	role := fs.String("role", models.RoleOperator, "admin, operator or viewer")
	db := dbFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("--username is required")
	}
	pw, err := readPassword(os.Stdin, "user add")
	if err != nil {
		return err
	}
	store, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := core.New(core.Params{Store: store}).CreateUser(ctx, cliActor, models.NewUser{Username: *username, Password: pw, Role: *role})
	if err != nil {
		return cliErr(err)
	}
	fmt.Fprintf(os.Stderr, "created %s user %s\n", u.Role, u.Username)
	return nil
}

func runUserPasswd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user passwd", flag.ContinueOnError)
	username := fs.String("username", "", "the user whose password to set")
	db := dbFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("--username is required")
	}
	pw, err := readPassword(os.Stdin, "user passwd")
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
		return noUser(*username, err)
	}
	if _, err := core.New(core.Params{Store: store}).SetPassword(ctx, cliActor, u.ID, pw, ""); err != nil {
		return cliErr(err)
	}
	fmt.Fprintf(os.Stderr, "set the password of %s and ended their sessions\n", u.Username)
	return nil
}

func runUserList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user list", flag.ContinueOnError)
	db := dbFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tDISABLED\tCREATED")
	for offset := 0; ; {
		list, total, err := store.ListUsers(ctx, 100, offset)
		if err != nil {
			return err
		}
		for _, u := range list {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", u.Username, u.Role, u.Disabled, u.CreatedAt.UTC().Format(time.RFC3339))
		}
		offset += len(list)
		if len(list) == 0 || int64(offset) >= total {
			break
		}
	}
	return tw.Flush()
}

// cliErr turns the write paths' field errors into CLI words.
func cliErr(err error) error {
	var se *models.SpecError
	if errors.As(err, &se) {
		return fmt.Errorf("--%s: %s %s", se.Field, se.Field, se.Message)
	}
	return err
}

// noUser says that a user does not exist and how to see who does.
func noUser(name string, err error) error {
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no user %q in this database (`portier user list` shows the users)", name)
	}
	return err
}

// readPassword reads the first line of r.
func readPassword(r io.Reader, cmd string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("give the password on stdin, e.g. `echo \"$PASSWORD\" | portier %s …`", cmd)
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

// open opens an existing database. The offline commands never create one:
// a typo in --data-dir must not leave an empty database (and directory)
// behind that then reports "user not found". SQLite databases are made by
// `portier run` or `portier serve`; Postgres ones by the operator.
func (o dbOptions) open(ctx context.Context) (*models.Store, error) {
	dsn, flagName := *o.url, "--database-url"
	if dsn == "" {
		dsn, flagName = filepath.Join(*o.dataDir, "portier.db"), "--data-dir"
	}
	if !models.IsPostgres(dsn) {
		fi, err := os.Stat(dsn)
		switch {
		case errors.Is(err, os.ErrNotExist):
			abs, _ := filepath.Abs(dsn)
			if abs == "" {
				abs = dsn
			}
			how := fmt.Sprintf("`portier run --data-dir %s` creates one on its first start", *o.dataDir)
			if flagName == "--database-url" {
				how = fmt.Sprintf("`portier serve --database-url %s` creates one on its first start", dsn)
			}
			return nil, fmt.Errorf("there is no Portier database at %s (%s): %s, or point %s at an existing one", abs, flagName, how, flagName)
		case err != nil:
			return nil, fmt.Errorf("database %s: %w", dsn, err)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("database %s is not a file", dsn)
		}
	}
	return models.Open(ctx, dsn)
}
