//go:build !linux

package readpoll

// Poller is unavailable here: New always fails with ErrUnsupported.
type Poller struct{}

// Watch is a watched connection; see the Linux implementation.
type Watch struct{}

// New returns ErrUnsupported: this system has no epoll.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Watch returns ErrUnsupported.
func (p *Poller) Watch(c conn, fn func(*Watch)) (*Watch, error) { return nil, ErrUnsupported }

// Close does nothing.
func (p *Poller) Close() error { return nil }

// Rearm does nothing.
func (w *Watch) Rearm() error { return nil }

// Stop does nothing.
func (w *Watch) Stop() {}
