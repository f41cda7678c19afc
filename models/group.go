package models

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrBusy is returned when a group's queue is full.
var ErrBusy = errors.New("too many pending writes")

// Group runs work that arrives concurrently in batches ("group commit"):
// Do queues an item and waits until the batch holding it has run. While
// Workers batches run, new items wait and go together into the next one,
// so under load many callers share one transaction, and alone a caller
// pays for a batch of one. Results travel in the items themselves.
type Group[T any] struct {
	// Run runs one batch (at most MaxBatch items, in arrival order). It
	// must give every item its result.
	Run func(batch []T)
	// Workers is how many batches may run at once (at least 1).
	Workers int
	// MaxBatch bounds a batch; MaxPending bounds the queue, beyond which Do
	// fails at once with ErrBusy.
	MaxBatch, MaxPending int

	mu      sync.Mutex
	pending []groupCall[T]
	running int
}

type groupCall[T any] struct {
	item T
	done chan struct{}
}

// Do queues item and waits until its batch ran. A caller whose ctx ends
// stops waiting (its item may still run later).
func (g *Group[T]) Do(ctx context.Context, item T) error {
	c := groupCall[T]{item: item, done: make(chan struct{})}
	g.mu.Lock()
	if len(g.pending) >= g.MaxPending {
		g.mu.Unlock()
		return ErrBusy
	}
	g.pending = append(g.pending, c)
	if g.running < max(g.Workers, 1) {
		g.running++
		go g.drain()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the batch: %w", ctx.Err())
	}
}

// drain runs batches until the queue is empty, then exits.
func (g *Group[T]) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.MaxBatch)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		calls := make([]groupCall[T], n)
		copy(calls, g.pending)
		g.pending = append(g.pending[:0], g.pending[n:]...)
		g.mu.Unlock()
		batch := make([]T, n)
		for i, c := range calls {
			batch[i] = c.item
		}
		g.Run(batch)
		for _, c := range calls {
			close(c.done)
		}
	}
}
