package models

import (
	"context"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// One LISTEN connection per store (Postgres). The scheduler's task channel
// and the publish-target cache's channel share it: the listener LISTENs on
// both channels of the store's schema whoever subscribed, and hands each
// notification to the subscribers of its channel. It starts with the first
// subscription, reconnects with backoff after a failure, and stops when the
// store is closed.
//
// Subscribers learn the connection's state through callbacks: ready once
// LISTEN is in effect (at once if it already is), notify per notification,
// down when the connection failed (every notification since may be lost).

// listenChannels are the channel prefixes the listener LISTENs on; the
// channel is prefix + current_schema().
var listenChannels = []string{tasksChannelPrefix, targetsChannelPrefix}

const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// listenSub is one subscription. Its callbacks must not block for long.
type listenSub struct {
	prefix string
	ready  func()
	notify func(payload string)
	down   func(err error)
}

// listener is the store's LISTEN connection. mu guards the fields below it
// and is never held across I/O or a callback.
type listener struct {
	root *Store

	mu      sync.Mutex
	subs    map[int]*listenSub
	nextID  int
	up      bool // LISTEN is in effect now
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newListener(root *Store) *listener {
	return &listener{root: root, subs: map[int]*listenSub{}}
}

// subscribe adds sub and starts the connection if it is the first; it
// returns the id for unsubscribe. On a closed store it does nothing (id -1).
func (l *listener) subscribe(sub *listenSub) int {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return -1
	}
	id := l.nextID
	l.nextID++
	l.subs[id] = sub
	up := l.up
	if !l.started {
		ctx, cancel := context.WithCancel(context.Background())
		l.started, l.cancel, l.done = true, cancel, make(chan struct{})
		go l.run(ctx)
	}
	l.mu.Unlock()
	if up && sub.ready != nil {
		sub.ready()
	}
	return id
}

func (l *listener) unsubscribe(id int) {
	l.mu.Lock()
	delete(l.subs, id)
	l.mu.Unlock()
}

// close stops the connection and waits for it.
func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// each calls fn for every subscription of prefix ("" for all), outside mu.
func (l *listener) each(prefix string, fn func(*listenSub)) {
	l.mu.Lock()
	subs := make([]*listenSub, 0, len(l.subs))
	for _, s := range l.subs {
		if prefix == "" || s.prefix == prefix {
			subs = append(subs, s)
		}
	}
	l.mu.Unlock()
	for _, s := range subs {
		fn(s)
	}
}

// run keeps the connection until ctx ends.
func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	log := slog.Default().With("component", "models", "part", "listener")
	backoff := listenBackoffMin
	for {
		var since time.Time
		err := l.listen(ctx, func() {
			l.mu.Lock()
			l.up = true
			l.mu.Unlock()
			since = time.Now()
			l.each("", func(s *listenSub) {
				if s.ready != nil {
					s.ready()
				}
			})
		})
		l.mu.Lock()
		l.up = false
		l.mu.Unlock()
		l.each("", func(s *listenSub) {
			if s.down != nil {
				s.down(err)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if !since.IsZero() && time.Since(since) > time.Minute {
			backoff = listenBackoffMin
		}
		log.Warn("LISTEN connection lost; replicas' changes are noticed by polling until it is back", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listen holds one connection of the pool LISTENing on every channel of
// listenChannels and dispatches notifications until ctx ends or the
// connection fails. ready is called once LISTEN is in effect.
func (l *listener) listen(ctx context.Context, ready func()) error {
	sqlDB, err := l.root.DB.DB()
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
		byChannel := map[string]string{} // channel -> prefix
		var stmts []string
		for _, p := range listenChannels {
			ch := p + schema
			byChannel[ch] = p
			stmts = append(stmts, "LISTEN "+quoteIdent(ch))
		}
		if _, err := pc.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		ready()
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
			if p, ok := byChannel[n.Channel]; ok {
				l.each(p, func(s *listenSub) { s.notify(n.Payload) })
			}
		}
	})
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
