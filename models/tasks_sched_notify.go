package models

import (
	"context"
	"errors"
	"fmt"
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

// ListenTasksChanged subscribes to the task channel on the store's LISTEN
// connection (listen.go) and calls fn with each notification's payload
// until ctx ends or the connection fails (the error says which; callers
// subscribe again). ready, if not nil, is called once LISTEN is in effect.
// fn must not block for long.
func (s *Store) ListenTasksChanged(ctx context.Context, ready func(), fn func(payload string)) error {
	if s.dialect != DialectPostgres || s.listener == nil {
		return ErrNoListen
	}
	lost := make(chan error, 1)
	id := s.listener.subscribe(&listenSub{prefix: tasksChannelPrefix, ready: ready, notify: fn, down: func(err error) {
		select {
		case lost <- err:
		default:
		}
	}})
	if id < 0 {
		return errors.New("listen: the store is closed")
	}
	defer s.listener.unsubscribe(id)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-lost:
		return err
	}
}
