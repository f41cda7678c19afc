package cdnedge

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// diskCache is the optional second tier: complete segments are written
// to files as their fill ends, and served from there (with sendfile) once
// the memory tier has evicted them. It is bounded by bytes with
// least-recently-used eviction, like the memory tier. Its mutex guards
// the index only and is never held across file I/O; a file removed while
// a viewer reads it stays readable through the open descriptor. The
// directory is emptied at start: the tier is a cache, not a store.
type diskCache struct {
	dir      string
	capacity int64

	mu    sync.Mutex
	used  int64
	ll    *list.List // front: most recently used; values *diskItem
	items map[string]*list.Element
}

// diskItem is one object on disk, with the headers of its responses.
type diskItem struct {
	key     string
	path    string
	size    int64
	header  http.Header
	modTime time.Time
}

func newDiskCache(dir string, capacity int64) (*diskCache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("cdnedge: empty disk cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cdnedge: disk cache %s: %w", dir, err)
	}
	return &diskCache{dir: dir, capacity: capacity, ll: list.New(), items: map[string]*list.Element{}}, nil
}

// get returns the item for key and marks it used.
func (d *diskCache) get(key string) *diskItem {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[key]; ok {
		d.ll.MoveToFront(el)
		return el.Value.(*diskItem)
	}
	return nil
}

// store writes a complete entry's body to a file and indexes it,
// evicting the least recently used files past the bound.
func (d *diskCache) store(en *entry, body []byte) error {
	if int64(len(body)) > d.capacity {
		return nil
	}
	sum := sha256.Sum256([]byte(en.key))
	path := filepath.Join(d.dir, hex.EncodeToString(sum[:16]))
	tmp, err := os.CreateTemp(d.dir, ".fill-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	it := &diskItem{key: en.key, path: path, size: int64(len(body)), header: en.header, modTime: en.lastModified}
	var drop []string
	d.mu.Lock()
	if el, ok := d.items[en.key]; ok { // replaced: same path, count it once
		d.used -= el.Value.(*diskItem).size
		d.ll.Remove(el)
	}
	d.items[en.key] = d.ll.PushFront(it)
	d.used += it.size
	for d.used > d.capacity {
		back := d.ll.Back()
		old := back.Value.(*diskItem)
		d.ll.Remove(back)
		delete(d.items, old.key)
		d.used -= old.size
		drop = append(drop, old.path)
	}
	d.mu.Unlock()
	for _, p := range drop {
		_ = os.Remove(p)
	}
	return nil
}

// stats is the bytes and files held.
func (d *diskCache) stats() (int64, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used, d.ll.Len()
}
