package hlsorigin

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned by a Backend for a key it does not hold.
var ErrNotFound = errors.New("object not found")

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag is a strong validator for the object's bytes, quoted.
	ETag string
}

// Backend stores the origin's objects under slash-separated keys that the
// origin builds from validated names only (no "..", no empty parts). It is
// safe for concurrent use.
type Backend interface {
	// Put stores the bytes of r under key atomically: readers see the old
	// object or the whole new one, never a part. An error from r (e.g. a
	// size limit) aborts the write and is returned wrapped.
	Put(ctx context.Context, key string, r io.Reader) (Info, error)
	// Open returns the object's bytes and its Info (ErrNotFound if absent).
	Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error)
	// Stat returns the object's Info (ErrNotFound if absent).
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix.
	List(ctx context.Context, prefix string) ([]Info, error)
}
