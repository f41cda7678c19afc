package hlsorigin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FSBackend stores objects as files under a directory: each write goes to a
// hidden temporary file in the target directory, is synced and then renamed
// over the key, so a reader never sees a partial file.
type FSBackend struct {
	root string
}

var _ Backend = (*FSBackend)(nil)

// tmpPrefix starts the name of files being written; List skips them and
// no valid name starts with a dot.
const tmpPrefix = ".tmp-"

// NewFSBackend returns a backend rooted at dir, which it creates.
func NewFSBackend(dir string) (*FSBackend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("hls storage %s: %w", abs, err)
	}
	return &FSBackend{root: abs}, nil
}

func (b *FSBackend) path(key string) string { return filepath.Join(b.root, filepath.FromSlash(key)) }

func fileInfo(key string, fi fs.FileInfo) Info {
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(),
		ETag: `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + "-" + strconv.FormatInt(fi.Size(), 36) + `"`}
}

// Put writes key through a synced temporary file and a rename.
func (b *FSBackend) Put(_ context.Context, key string, r io.Reader) (Info, error) {
	p := b.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return Info{}, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return Info{}, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return Info{}, fmt.Errorf("write %s: %w", key, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return Info{}, err
	}
	if err := f.Sync(); err != nil {
		return Info{}, err
	}
	if err := f.Close(); err != nil {
		return Info{}, err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return Info{}, err
	}
	ok = true
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, err
	}
	return fileInfo(key, fi), nil
}

// Open opens key for reading.
func (b *FSBackend) Open(_ context.Context, key string) (io.ReadSeekCloser, Info, error) {
	f, err := os.Open(b.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, Info{}, ErrNotFound
	}
	return f, fileInfo(key, fi), nil
}

// Stat describes key.
func (b *FSBackend) Stat(_ context.Context, key string) (Info, error) {
	fi, err := os.Stat(b.path(key))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return fileInfo(key, fi), nil
}

// Delete removes key and then its directories that became empty.
func (b *FSBackend) Delete(_ context.Context, key string) error {
	p := b.path(key)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for d := filepath.Dir(p); d != b.root && strings.HasPrefix(d, b.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil { // not empty (or gone): stop
			break
		}
	}
	return nil
}

// List walks the directory of prefix (which ends in "/" or names a
// directory) and returns its files, temporary ones excluded.
func (b *FSBackend) List(_ context.Context, prefix string) ([]Info, error) {
	dir := b.path(strings.TrimSuffix(prefix, "/"))
	var out []Info
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			out = append(out, fileInfo(key, fi))
		}
		return nil
	})
	return out, err
}
