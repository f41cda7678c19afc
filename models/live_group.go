package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Group commit of AddOrigin. Publish decisions arrive concurrently and each
// used to pay for its own write transaction (on SQLite one at a time,
// queued in Go). originGroup collects the AddOrigin calls that arrive while
// a transaction runs and writes them in the next one: every caller still
// returns only after its origin, its live flag and its audit event are
// committed, but the commit is shared.

const (
	// maxOriginBatch bounds one transaction; more waiting calls go to the next.
	maxOriginBatch = 256
	// maxOriginPending bounds the queue; a call beyond it fails at once.
	maxOriginPending = 4096
	// originBatchTimeout bounds one batch transaction.
	originBatchTimeout = 30 * time.Second
)

// ErrBusy is returned when the group-commit queue is full.
var ErrBusy = errors.New("too many pending writes")

type originOp struct {
	streamID     int64
	node         string
	now          time.Time
	countPublish bool
	ev           *AuditEvent

	wentLive bool
	err      error
	done     chan struct{}
}

type originGroup struct {
	s *Store // the store outside any transaction

	mu      sync.Mutex
	pending []*originOp
	running bool
}

// add queues op and waits until it is committed (or failed). A caller whose
// ctx ends stops waiting; its write may still commit (AddOrigin is
// idempotent).
func (g *originGroup) add(ctx context.Context, op *originOp) (bool, error) {
	op.done = make(chan struct{})
	g.mu.Lock()
	if len(g.pending) >= maxOriginPending {
		g.mu.Unlock()
		return false, fmt.Errorf("add origin of stream %d: %w", op.streamID, ErrBusy)
	}
	g.pending = append(g.pending, op)
	if !g.running {
		g.running = true
		go g.drain()
	}
	g.mu.Unlock()
	select {
	case <-op.done:
		return op.wentLive, op.err
	case <-ctx.Done():
		return false, fmt.Errorf("add origin of stream %d: %w", op.streamID, ctx.Err())
	}
}

// drain runs batches until the queue is empty, then exits.
func (g *originGroup) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), maxOriginBatch)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		batch := make([]*originOp, n)
		copy(batch, g.pending)
		g.pending = append(g.pending[:0], g.pending[n:]...)
		g.mu.Unlock()
		g.run(batch)
	}
}

// run writes batch in one transaction. If any call in it fails, the
// transaction is rolled back and every call is retried alone, so one
// failing call (a deleted stream) fails only itself.
func (g *originGroup) run(batch []*originOp) {
	ctx, cancel := context.WithTimeout(context.Background(), originBatchTimeout)
	defer cancel()
	// Ascending stream ids: the row locks (Postgres) are taken in the same
	// order as removeOrigins takes them, so batches cannot deadlock.
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].streamID < batch[j].streamID })
	err := g.s.hot().Tx(ctx, func(tx *Store) error {
		evs := make([]*AuditEvent, 0, len(batch))
		for _, op := range batch {
			wl, err := tx.addOriginTx(ctx, op.streamID, op.node, op.now, op.countPublish)
			if err != nil {
				return err
			}
			op.wentLive = wl
			if op.ev != nil {
				evs = append(evs, op.ev)
			}
		}
		return tx.auditMany(ctx, evs)
	})
	if err != nil && len(batch) > 1 {
		for _, op := range batch {
			if op.ev != nil {
				op.ev.ID = 0 // the rolled-back insert may have numbered it
			}
			op.wentLive, op.err = g.s.addOriginAlone(ctx, op.streamID, op.node, op.now, op.countPublish, op.ev)
			close(op.done)
		}
		return
	}
	for _, op := range batch {
		if err != nil {
			op.wentLive, op.err = false, err
		}
		close(op.done)
	}
}
