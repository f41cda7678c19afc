package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Cached publish-target lookups for the hook path (thousands of decisions
// a second, each needing app/name or key → stream).
//
// Invalidation is conservative: any committed write that may change what a
// lookup returns (a stream's app, name, key, enabled or allow_takeover; an
// application's name; creating or deleting either) clears the whole cache
// by bumping a generation. A gorm callback on this store's *gorm.DB does it
// for every insert, update and delete of streams or applications, except
// updates that set only the live-state columns the publish path itself
// writes (liveStateColumns). Entries carry the generation their database
// read started at and are ignored once it moved, so a read that raced a
// change is never served after it. Inside Store.Tx the callback bumps at
// the write and Tx bumps again after the commit.
//
// Several replicas (Postgres): a change also sends NOTIFY on
// portier_targets.<schema> (inside the writer's transaction, so it is
// delivered only if and when the change commits); each store's listener
// bumps the generation on every notification. The cache is only used
// while the LISTEN is in effect: while the listener connects or reconnects,
// lookups read the database and store nothing, and the generation moves
// when LISTEN takes effect. Notifications lost to a connection that died
// silently are bounded by targetTTL: no entry is served after 5 s.
//
// SQLite has one control-plane process (serve locks the file), so the
// local bump is enough.

const (
	// targetTTL bounds how long an entry is served (the safety net).
	targetTTL = 5 * time.Second
	// targetMaxEntries bounds each map (negative entries for unknown keys
	// are cheap to make up); a full map starts over.
	targetMaxEntries = 1 << 16
	// targetsChannelPrefix + current_schema() is the notification channel.
	targetsChannelPrefix = "portier_targets."
)

// liveStateColumns are the streams columns that no lookup's answer
// depends on: the publish path writes them on every publish, and clearing
// the cache each time would make it useless.
var liveStateColumns = map[string]bool{
	"live": true, "publish_count": true, "last_publish_at": true,
	"updated_at": true, "codec_info": true, "bitrate": true,
}

// targetCache holds publish targets by app/name and by key. gen and usable
// are atomics read without locks; mu guards the maps and is held only
// around map accesses (never across I/O). lmu guards the listener's
// lifecycle.
type targetCache struct {
	root *Store // the store Open returned: its pool serves the listener

	gen    atomic.Uint64
	usable atomic.Bool // SQLite: always; Postgres: while LISTEN is in effect

	mu      sync.RWMutex
	mapsGen uint64 // the generation the maps were filled at
	byName  map[targetName]targetEntry
	byKey   map[string]targetEntry

	// afterRead, if set (tests only), runs between a lookup's database
	// read and storing its answer.
	afterRead func()

	listening atomic.Bool // subscribed to the store's listener
	lmu       sync.Mutex  // guards closed and subID
	closed    bool
	subID     int
}

type targetName struct{ app, name string }

// targetEntry is a cached answer; found false is a cached "not found".
type targetEntry struct {
	t     PublishTarget // Live is always false (see CachedPublishTargetByName)
	found bool
	gen   uint64
	at    time.Time // when the database read started
}

func newTargetCache(root *Store) *targetCache {
	c := &targetCache{root: root, byName: map[targetName]targetEntry{}, byKey: map[string]targetEntry{}}
	c.usable.Store(root.dialect != DialectPostgres)
	return c
}

// invalidate makes every entry stale.
func (c *targetCache) invalidate() { c.gen.Add(1) }

// begin starts a lookup: the generation it reads at (loaded before usable,
// so a listener that goes down or comes up afterwards moves it) and
// whether the cache may be used at all.
func (c *targetCache) begin() (gen uint64, at time.Time, ok bool) {
	gen = c.gen.Load()
	return gen, time.Now(), c.usable.Load()
}

func (c *targetCache) valid(e targetEntry, gen uint64, now time.Time) bool {
	return e.gen == gen && now.Sub(e.at) < targetTTL
}

func (c *targetCache) getName(k targetName, gen uint64, now time.Time) (targetEntry, bool) {
	c.mu.RLock()
	e, ok := c.byName[k]
	c.mu.RUnlock()
	return e, ok && c.valid(e, gen, now)
}

func (c *targetCache) getKey(key string, gen uint64, now time.Time) (targetEntry, bool) {
	c.mu.RLock()
	e, ok := c.byKey[key]
	c.mu.RUnlock()
	return e, ok && c.valid(e, gen, now)
}

// put stores the answer of a database read that started at gen: a found
// target under both its name and key, a miss under what was looked up
// (missName or missKey). A read that a change may have raced (the
// generation moved) stores nothing.
func (c *targetCache) put(gen uint64, at time.Time, t *PublishTarget, missName *targetName, missKey string) {
	if c.afterRead != nil {
		c.afterRead()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if c.mapsGen != gen || len(c.byName) >= targetMaxEntries || len(c.byKey) >= targetMaxEntries {
		c.byName, c.byKey, c.mapsGen = map[targetName]targetEntry{}, map[string]targetEntry{}, gen
	}
	switch {
	case t != nil:
		e := targetEntry{t: *t, found: true, gen: gen, at: at}
		e.t.Live = false
		c.byName[targetName{t.App, t.Name}] = e
		c.byKey[t.PublishKey] = e
	case missName != nil:
		c.byName[*missName] = targetEntry{gen: gen, at: at}
	default:
		c.byKey[missKey] = targetEntry{gen: gen, at: at}
	}
}

// CachedPublishTargetByName is PublishTargetByName answered from memory
// when possible (see the invalidation rules above; unknown names are
// cached too). The result's Live is always false: the live flag changes
// on every publish and is not cached; read the stream when you need it.
func (s *Store) CachedPublishTargetByName(ctx context.Context, app, name string) (*PublishTarget, error) {
	c := s.targets
	if c == nil {
		return withoutLive(s.PublishTargetByName(ctx, app, name))
	}
	c.startListener()
	k := targetName{app, name}
	gen, at, ok := c.begin()
	if ok {
		if e, hit := c.getName(k, gen, at); hit {
			if !e.found {
				return nil, fmt.Errorf("stream %s/%s: %w", app, name, ErrNotFound)
			}
			t := e.t
			return &t, nil
		}
	}
	t, err := s.PublishTargetByName(ctx, app, name)
	if ok {
		if err == nil {
			c.put(gen, at, t, nil, "")
		} else if errors.Is(err, ErrNotFound) {
			c.put(gen, at, nil, &k, "")
		}
	}
	return withoutLive(t, err)
}

// CachedPublishTargetByKey is PublishTargetByKey answered from memory when
// possible, like CachedPublishTargetByName (Live is always false).
func (s *Store) CachedPublishTargetByKey(ctx context.Context, key string) (*PublishTarget, error) {
	c := s.targets
	if c == nil || key == "" {
		return withoutLive(s.PublishTargetByKey(ctx, key))
	}
	c.startListener()
	gen, at, ok := c.begin()
	if ok {
		if e, hit := c.getKey(key, gen, at); hit {
			if !e.found {
				return nil, fmt.Errorf("stream by key: %w", ErrNotFound)
			}
			t := e.t
			return &t, nil
		}
	}
	t, err := s.PublishTargetByKey(ctx, key)
	if ok {
		if err == nil {
			c.put(gen, at, t, nil, "")
		} else if errors.Is(err, ErrNotFound) {
			c.put(gen, at, nil, nil, key)
		}
	}
	return withoutLive(t, err)
}

func withoutLive(t *PublishTarget, err error) (*PublishTarget, error) {
	if t != nil {
		t.Live = false
	}
	return t, err
}

// startListener subscribes to the targets channel on the store's LISTEN
// connection (listen.go) on the first cached lookup, so commands that never
// look up a target hold no LISTEN connection.
func (c *targetCache) startListener() {
	if c.root.listener == nil || c.listening.Load() {
		return
	}
	c.lmu.Lock()
	defer c.lmu.Unlock()
	if c.closed || c.listening.Load() {
		return
	}
	c.listening.Store(true)
	c.subID = c.root.listener.subscribe(&listenSub{
		prefix: targetsChannelPrefix,
		// Changes committed before LISTEN took effect are read by lookups
		// that start after the bump; later ones are notified.
		ready:  func() { c.invalidate(); c.usable.Store(true) },
		notify: func(string) { c.invalidate() },
		// Notifications may have been lost: read the database until the
		// connection is back, and serve nothing cached before.
		down: func(error) { c.usable.Store(false); c.invalidate() },
	})
}

// close ends the subscription.
func (c *targetCache) close() {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	c.closed = true
	if c.listening.Load() && c.subID >= 0 {
		c.root.listener.unsubscribe(c.subID)
		c.usable.Store(false)
	}
}

// Statement kinds the invalidation callbacks tell apart.
const (
	writeInsertDelete = iota
	writeUpdate
	writeRaw
)

// registerCallbacks installs the invalidation callbacks on db (shared by
// every session and transaction derived from it). They run after gorm's
// own transaction of a single statement has committed.
func (c *targetCache) registerCallbacks(db *gorm.DB) error {
	const after = "gorm:commit_or_rollback_transaction"
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().After(after).Register("portier:targets_create", c.afterWrite(writeInsertDelete)),
		cb.Delete().After(after).Register("portier:targets_delete", c.afterWrite(writeInsertDelete)),
		cb.Update().After(after).Register("portier:targets_update", c.afterWrite(writeUpdate)),
		cb.Raw().After("gorm:raw").Register("portier:targets_raw", c.afterWrite(writeRaw)),
	} {
		if err != nil {
			return fmt.Errorf("register target-cache callbacks: %w", err)
		}
	}
	return nil
}

// afterWrite invalidates after a write that may change a publish target,
// and on Postgres tells the other replicas. Inside a transaction the
// NOTIFY is part of it (delivered at commit, or never), and a failed
// NOTIFY fails the statement; outside one the write is already committed
// and a failed NOTIFY is only logged (the others re-read within targetTTL).
func (c *targetCache) afterWrite(kind int) func(*gorm.DB) {
	return func(db *gorm.DB) {
		if db.Error != nil || db.DryRun || !changesTargets(kind, db.Statement) {
			return
		}
		if kind != writeRaw && db.RowsAffected == 0 {
			return // nothing changed (raw DDL reports 0 too, so raw always counts)
		}
		c.invalidate()
		if c.root.dialect != DialectPostgres {
			return
		}
		_, err := db.Statement.ConnPool.ExecContext(db.Statement.Context,
			"SELECT pg_notify($1 || current_schema(), '')", targetsChannelPrefix)
		if err == nil {
			return
		}
		if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); inTx {
			db.AddError(fmt.Errorf("notify other replicas of a stream change: %w", err))
			return
		}
		slog.Default().Warn("notify other replicas of a stream change failed; they re-read it within the cache TTL",
			"component", "models", "part", "target-cache", "err", err, "ttl", targetTTL)
	}
}

// changesTargets reports whether a write statement may change a publish
// target: any insert or delete of streams or applications, any update of
// applications, an update of streams unless it sets live-state columns
// only (given as a map of column names; a struct counts as everything).
// Raw statements are judged by their text: an INSERT, UPDATE, DELETE (or
// DDL) naming either table.
func changesTargets(kind int, st *gorm.Statement) bool {
	if kind == writeRaw {
		return rawChangesTargets(st.SQL.String())
	}
	switch st.Table {
	case "applications":
		return true
	case "streams":
		cols, ok := st.Dest.(map[string]any)
		if kind != writeUpdate || !ok {
			return true
		}
		for col := range cols {
			if !liveStateColumns[col] {
				return true
			}
		}
		return false
	}
	return false
}

func rawChangesTargets(sql string) bool {
	verb, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	switch strings.ToUpper(verb) {
	case "INSERT", "UPDATE", "DELETE", "TRUNCATE", "ALTER", "DROP", "WITH", "MERGE", "REPLACE":
	default:
		return false
	}
	lower := strings.ToLower(sql)
	return containsWord(lower, "streams") || containsWord(lower, "applications")
}

// containsWord reports whether w occurs in s as an identifier of its own.
func containsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		if (start == 0 || !identByte(s[start-1])) && (end == len(s) || !identByte(s[end])) {
			return true
		}
		i = end
	}
}

func identByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
