// Package models holds the control plane's gorm models and the queries on
// them. Open connects to Postgres (for clusters) or SQLite (the embedded
// default, one replica only) and applies the embedded migrations.
//
// Times are always stored in UTC; pass UTC times to queries that compare them
// (SQLite compares times as text).
package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc64"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/portier/portier/migrations"
)

// Dialect names the database behind a Store.
type Dialect string

// The supported dialects.
const (
	DialectSQLite   Dialect = "sqlite"
	DialectPostgres Dialect = "postgres"
)

// Sentinel errors returned by Store methods. The API maps them to HTTP statuses.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("already exists")
	ErrInUse     = errors.New("still in use")
	ErrNoSecret  = errors.New("invalid credentials")
	ErrForbidden = errors.New("forbidden")
)

// Store is the control plane's database.
type Store struct {
	DB       *gorm.DB
	dialect  Dialect
	provider *goose.Provider
	// writers (SQLite only; capacity 1) queues this process's write
	// transactions in Go. SQLite has one writer at a time, and a
	// connection that finds the write lock taken polls for it with
	// sleeps of up to 100 ms (the busy handler); waiting here instead
	// hands the lock over at once. Nil inside a transaction.
	writers chan struct{}
	// group (nil inside a transaction) batches AddOrigin calls into shared
	// transactions (live_group.go).
	group *Group[*originOp]
	// targets caches publish targets for the hook path (targets_cache.go);
	// shared with the stores of Tx, nil in copies made elsewhere (their
	// cached lookups read the database).
	targets *targetCache
	// live (shared with the stores of Tx) compiles the tasks of streams
	// that go live, inside AddOrigin's transaction (SetLiveCompiler).
	live *atomic.Pointer[LiveCompiler]
	// listener is the store's one LISTEN connection (Postgres; listen.go),
	// shared by the scheduler's and the target cache's notifications. Nil
	// in the stores of Tx and on SQLite.
	listener *listener
	// urlPolicy decides which hosts task URLs may name (taskurls.go);
	// shared with the stores of Tx. Nil is the built-in policy.
	urlPolicy *atomic.Pointer[TaskURLPolicy]
}

// IsPostgres reports whether dsn names a Postgres database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn and applies every pending migration. A dsn starting
// with postgres:// is Postgres (pgx); anything else is a SQLite file path,
// opened with WAL, a busy timeout, immediate write transactions and foreign
// keys on.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg := &gorm.Config{
		Logger:         logger.Discard,
		TranslateError: true,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	var (
		db      *gorm.DB
		dialect Dialect
		err     error
	)
	if IsPostgres(dsn) {
		dialect = DialectPostgres
		db, err = gorm.Open(postgres.Open(dsn), cfg)
	} else {
		dialect = DialectSQLite
		if dsn == "" {
			return nil, errors.New("open database: empty database path")
		}
		db, err = gorm.Open(sqlite.Open(sqliteDSN(dsn)), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == DialectSQLite {
		sqlDB.SetMaxOpenConns(4)
	} else {
		// Idle connections are kept up to the open limit: database/sql
		// keeps 2 by default, and under bursts of hooks the pool then
		// closed and reopened a Postgres backend hundreds of times a second.
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{DB: db, dialect: dialect, live: new(atomic.Pointer[LiveCompiler]), urlPolicy: new(atomic.Pointer[TaskURLPolicy])}
	if dialect == DialectSQLite {
		s.writers = make(chan struct{}, 1)
	}
	s.group = newOriginGroup(s)
	if err := s.migrate(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if dialect == DialectPostgres {
		s.listener = newListener(s)
	}
	s.targets = newTargetCache(s)
	if err := s.targets.registerCallbacks(db); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN is the driver's URI for the database at path, which may carry
// SQLite URI parameters after a "?". SQLite decodes %HH in a URI's path and
// ends the path at "#", so both are escaped: a directory such as
// /tmp/run#2 (Go test names put "#" in temporary directories) is opened
// where it is, not at /tmp/run.
func sqliteDSN(path string) string {
	path, query, hasQuery := strings.Cut(path, "?")
	path = strings.NewReplacer("%", "%25", "#", "%23").Replace(path)
	sep := "?"
	if hasQuery {
		path, sep = path+"?"+query, "&"
	}
	return "file:" + path + sep +
		"_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
}

func (s *Store) migrate(ctx context.Context, sqlDB *sql.DB) error {
	var (
		p   *goose.Provider
		err error
	)
	quiet := goose.WithSlog(slog.New(slog.DiscardHandler))
	switch s.dialect {
	case DialectPostgres:
		// One advisory lock per schema, so replicas starting together apply
		// migrations once, and parallel test schemas do not wait on each other.
		var schema string
		if err := sqlDB.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("migrate: read current schema: %w", err)
		}
		id := int64(crc64.Checksum([]byte("portier-migrations/"+schema), crc64.MakeTable(crc64.ECMA)) >> 1)
		locker, lerr := lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 120))
		if lerr != nil {
			return fmt.Errorf("migrate: %w", lerr)
		}
		p, err = goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.Postgres(), goose.WithSessionLocker(locker), quiet)
	default:
		p, err = goose.NewProvider(goose.DialectSQLite3, sqlDB, migrations.SQLite(), quiet)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	s.provider = p
	return nil
}

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// SingleReplica reports whether only one control-plane process may use this
// database (true for SQLite).
func (s *Store) SingleReplica() bool { return s.dialect == DialectSQLite }

// Close stops the target cache's listener and closes the connection pool.
func (s *Store) Close() error {
	if s.targets != nil {
		s.targets.close()
	}
	if s.listener != nil {
		s.listener.close()
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// MigrationStatus reports the applied and the latest known migration version.
func (s *Store) MigrationStatus(ctx context.Context) (current, latest int64, err error) {
	return s.provider.GetVersions(ctx)
}

// Tx runs fn in one transaction: all of its writes happen or none do.
//
// On SQLite the transaction takes the write lock first (a no-op UPDATE,
// waiting up to the busy timeout): glebarez/go-sqlite v1.21.2 ignores
// _txlock=immediate when _time_format is also set, and a deferred
// transaction that reads and then writes after another connection's commit
// fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting.
//
// On SQLite, write transactions of this process also queue in Go (see
// Store.writers) rather than in SQLite's busy handler.
//
// A write inside the transaction that changes a publish target clears the
// target cache at once (targets_cache.go); Tx clears it again once the
// transaction has ended, so that nothing read before the commit survives.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.writers != nil {
		select {
		case s.writers <- struct{}{}:
			defer func() { <-s.writers }()
		case <-ctx.Done():
			return fmt.Errorf("wait for the database write lock: %w", ctx.Err())
		}
	}
	if s.targets != nil {
		// Any bump during the transaction (its own writes, or others')
		// earns one more after it: rare, and never wrong.
		gen := s.targets.gen.Load()
		defer func() {
			if s.targets.gen.Load() != gen {
				s.targets.invalidate()
			}
		}()
	}
	return s.DB.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		if s.dialect == DialectSQLite {
			if err := db.Exec("UPDATE nodes SET id = id WHERE 1 = 0").Error; err != nil {
				return fmt.Errorf("take the write lock: %w", err)
			}
		}
		return fn(&Store{DB: db, dialect: s.dialect, provider: s.provider, targets: s.targets, live: s.live, urlPolicy: s.urlPolicy})
	})
}

// db returns the gorm handle bound to ctx.
func (s *Store) db(ctx context.Context) *gorm.DB { return s.DB.WithContext(ctx) }

// notFound maps gorm's record-not-found to ErrNotFound with context.
func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// conflict maps a unique violation to ErrConflict with context.
func conflict(err error, what string) error {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// lim turns a zero or negative limit into "no limit" for gorm.
func lim(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
