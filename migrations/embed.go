// Package migrations embeds the control plane's versioned SQL migrations, one
// folder per database dialect (SQLite and Postgres differ in identity columns
// and time types). They are applied with goose on every start.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite is the migration folder for SQLite databases.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres is the migration folder for Postgres databases.
func Postgres() fs.FS { return sub("postgres") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		// Only possible if the embed pattern above and dir disagree: a build defect.
		panic("migrations: " + err.Error())
	}
	return f
}
