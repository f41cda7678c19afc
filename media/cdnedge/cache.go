package cdnedge

import (
	"container/list"
	"sync"
)

// cache maps object keys to entries, bounded by the bytes of their bodies
// with least-recently-used eviction. One mutex guards everything in it
// and is never held across I/O, a channel send or a callback. An entry
// being filled is in the cache from its first request (that is how later
// viewers join its fill); it is charged its declared size as soon as its
// headers arrive, so the bound holds while objects are in flight.
type cache struct {
	mu       sync.Mutex
	capacity int64
	used     int64
	ll       *list.List // front: most recently used; values *entry
	items    map[string]*list.Element
	evicted  int64
}

func newCache(capacity int64) *cache {
	return &cache{capacity: capacity, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the entry for key and marks it used.
func (c *cache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*entry)
	}
	return nil
}

// getOrAdd returns the entry for key, or adds fresh and returns it with
// added true. When replace is non-nil and still the entry for key, fresh
// takes its place (an expired playlist).
func (c *cache) getOrAdd(key string, fresh *entry, replace *entry) (e *entry, added bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		old := el.Value.(*entry)
		if replace == nil || old != replace {
			c.ll.MoveToFront(el)
			return old, false
		}
		c.removeLocked(el)
	}
	c.items[key] = c.ll.PushFront(fresh)
	return fresh, true
}

// charge sets the bytes e holds against the bound and evicts the least
// recently used others until the cache fits. An entry no longer in the
// cache is not charged.
func (c *cache) charge(e *entry, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[e.key]
	if !ok || el.Value.(*entry) != e {
		return
	}
	c.used += n - e.accounted
	e.accounted = n
	for c.used > c.capacity {
		back := c.ll.Back()
		if back == nil || back == el && c.ll.Len() == 1 {
			break
		}
		if back == el { // never evict the object being charged: move it up
			c.ll.MoveToFront(el)
			continue
		}
		c.removeLocked(back)
		c.evicted++
	}
}

// remove drops e if it is still the entry for its key (a failed fill).
func (c *cache) remove(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok && el.Value.(*entry) == e {
		c.removeLocked(el)
	}
}

func (c *cache) removeLocked(el *list.Element) {
	e := el.Value.(*entry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.used -= e.accounted
	e.accounted = 0
}

// stats is the bytes charged, the entries held and the evictions so far.
func (c *cache) stats() (used int64, objects int, evicted int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.ll.Len(), c.evicted
}

// freshness is a playlist's state: fresh (serve it), stale (serve it and
// refresh: refresh is true for the one caller that must start the
// refresh), or expired (fetch anew).
type freshness int

const (
	fresh freshness = iota
	stale
	expired
)

// playlistState classifies e at now; for stale, it tells exactly one
// caller to refresh.
func (c *cache) playlistState(e *entry, now int64) (f freshness, refresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case now < e.expires.UnixNano():
		return fresh, false
	case now < e.staleUntil.UnixNano():
		refresh = !e.refreshing
		e.refreshing = true
		return stale, refresh
	default:
		return expired, false
	}
}

// endRefresh lets the next stale request try again (a failed refresh).
func (c *cache) endRefresh(e *entry) {
	c.mu.Lock()
	e.refreshing = false
	c.mu.Unlock()
}

// setExpiry sets a playlist's freshness once its fill completes.
func (c *cache) setExpiry(e *entry, expires, staleUntil int64) {
	c.mu.Lock()
	e.expires = timeFromNanos(expires)
	e.staleUntil = timeFromNanos(staleUntil)
	c.mu.Unlock()
}
