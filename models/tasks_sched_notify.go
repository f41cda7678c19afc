package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
)

// Task-change notifications between control-plane replicas (Postgres
// LISTEN/NOTIFY). A replica that changes assignments notifies; the others'
// listeners wake their concierges' long polls at once instead of at their
// next change-stamp poll. The channel is per schema, so stores in different
// schemas of one database (tests, several installations) do not wake each
// other. On SQLite (one replica) both are no-ops.

// tasksChannelPrefix + current_schema() is the notification channel.
const tasksChannelPrefix = "portier_tasks."

// NotifyTasksChanged tells the other replicas that assignments changed;
// payload identifies the sender (a replica skips its own notifications).
func (s *Store) NotifyTasksChanged(ctx context.Context, payload string) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if err := s.DB.WithContext(ctx).Exec("SELECT pg_notify(? || current_schema(), ?)", tasksChannelPrefix, payload).Error; err != nil {
		return fmt.Errorf("notify task change: %w", err)
	}
	return nil
}

// ErrNoListen is returned by ListenTasksChanged on a database without
// LISTEN/NOTIFY (SQLite).
var ErrNoListen = errors.New("the database has no LISTEN/NOTIFY")

// ListenTasksChanged holds one connection of the pool LISTENing on the task
// channel and calls fn with each notification's payload until ctx ends or
// the connection fails (the error says which; callers retry). ready, if not
// nil, is called once the LISTEN is in effect. fn must not block for long.
func (s *Store) ListenTasksChanged(ctx context.Context, ready func(), fn func(payload string)) error {
	return s.listen(ctx, tasksChannelPrefix, ready, fn)
}

// listen holds one connection of the pool LISTENing on prefix +
// current_schema() and calls fn with each notification's payload until ctx
// ends or the connection fails. ready, if not nil, is called once the
// LISTEN is in effect.
func (s *Store) listen(ctx context.Context, prefix string, ready func(), fn func(payload string)) error {
	if s.dialect != DialectPostgres {
		return ErrNoListen
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("listen: driver connection is %T, not pgx", dc)
		}
		pc := sc.Conn()
		var schema string
		if err := pc.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("listen: current schema: %w", err)
		}
		channel := `"` + strings.ReplaceAll(prefix+schema, `"`, `""`) + `"`
		if _, err := pc.Exec(ctx, "LISTEN "+channel); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		if ready != nil {
			ready()
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				// The connection is LISTENing (or broken): never hand it
				// back to the pool.
				if ctx.Err() != nil {
					return driver.ErrBadConn
				}
				return fmt.Errorf("listen: %w (%w)", err, driver.ErrBadConn)
			}
			fn(n.Payload)
		}
	})
}
