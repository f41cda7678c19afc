// Package replicas picks which of several equivalent control-plane replicas
// a client calls: it sticks with the one that answers and moves on to the
// next when one fails (a connection error or a 5xx answer). The control
// plane's replicas share one database, so any of them can answer any call.
package replicas

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
)

// List is an ordered set of base URLs and the index of the one in use. It
// is safe for concurrent use: the index is one atomic, moved on by
// compare-and-swap so that concurrent failures of one replica move it once.
type List struct {
	urls []string
	cur  atomic.Int64
}

// ErrEmpty: no URL was given.
var ErrEmpty = errors.New("no control plane URL")

// Parse reads a comma-separated list of http(s) base URLs (blanks around
// commas ignored, trailing slashes dropped, duplicates refused). The error
// names the bad entry without user info or query, which may hold secrets.
func Parse(list string) (*List, error) {
	var urls []string
	seen := map[string]bool{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimRight(strings.TrimSpace(raw), "/")
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return nil, fmt.Errorf("control plane URL %q: want http(s)://host:port", Redact(raw))
		}
		if seen[raw] {
			return nil, fmt.Errorf("control plane URL %q is listed twice", Redact(raw))
		}
		seen[raw] = true
		urls = append(urls, raw)
	}
	if len(urls) == 0 {
		return nil, ErrEmpty
	}
	return &List{urls: urls}, nil
}

// Len is the number of replicas.
func (l *List) Len() int { return len(l.urls) }

// Current returns the index and base URL of the replica to call now.
func (l *List) Current() (int, string) {
	i := int(l.cur.Load())
	return i, l.urls[i]
}

// At returns the base URL of replica i modulo Len (for trying every replica
// once from the current one: At(start+k) for k < Len).
func (l *List) At(i int) (int, string) {
	i %= len(l.urls)
	return i, l.urls[i]
}

// Failed records that replica i failed: if it is still the current one, the
// next becomes current. It reports whether this call moved the index (so
// that only one of several concurrent failures logs the switch).
func (l *List) Failed(i int) bool {
	if len(l.urls) == 1 {
		return false
	}
	return l.cur.CompareAndSwap(int64(i), int64((i+1)%len(l.urls)))
}

// String lists the replicas for logs, without user info or query strings.
func (l *List) String() string {
	out := make([]string, len(l.urls))
	for i, u := range l.urls {
		out[i] = Redact(u)
	}
	return strings.Join(out, ",")
}

// Redact drops the query string and user info of a URL, where keys and
// tokens travel, so that it can be logged.
func Redact(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		s = u.String()
	}
	return s
}
