package models

import (
	"context"
	"time"
)

// Group commit of AddOrigin. Publish decisions arrive concurrently and each
// used to pay for its own write transaction (on SQLite one at a time,
// queued in Go). The store's Group collects the AddOrigin calls that arrive
// while a transaction runs and writes them in the next one (addOriginsTx:
// a fixed number of statements per batch): every caller still returns only
// after its origin, its live flag and its audit event are committed, but
// the commit is shared.

const (
	// maxOriginBatch bounds one transaction; more waiting calls go to the next.
	maxOriginBatch = 256
	// maxOriginPending bounds the queue; a call beyond it fails at once.
	maxOriginPending = 4096
	// originBatchTimeout bounds one batch transaction.
	originBatchTimeout = 30 * time.Second
)

type originOp struct {
	streamID     int64
	node         string
	now          time.Time
	countPublish bool
	ev           *AuditEvent
	// key, when set, must still be the stream's key (a rotation that
	// committed since the key was checked wins); requireEnabled refuses a
	// disabled stream; publishID (a reported publish) must not be revoked.
	key            string
	requireEnabled bool
	publishID      int64

	wentLive bool
	err      error
}

// newOriginGroup batches s's AddOrigin calls: one batch at a time on
// SQLite (one writer anyway), two on Postgres, whose row locks let batches
// of different streams commit in parallel. More workers made the batches
// smaller, not faster: with 8, Postgres' statement log showed most batches
// holding a single call, and 1,000 going-live hooks took 4.5 s instead of
// 3.7 s (docs/benchmarks.md, Scheduler).
func newOriginGroup(s *Store) *Group[*originOp] {
	workers := 1
	if s.dialect == DialectPostgres {
		workers = 2
	}
	return &Group[*originOp]{Run: s.runOriginBatch, Workers: workers, MaxBatch: maxOriginBatch, MaxPending: maxOriginPending}
}

// runOriginBatch writes batch in one transaction (a call for a deleted
// stream fails alone inside it). If the transaction fails, every call is
// retried in a transaction of its own, so whatever broke it fails only its
// own call.
func (s *Store) runOriginBatch(batch []*originOp) {
	ctx, cancel := context.WithTimeout(context.Background(), originBatchTimeout)
	defer cancel()
	err := s.hot().Tx(ctx, func(tx *Store) error { return tx.addOriginsTx(ctx, batch) })
	switch {
	case err == nil:
	case len(batch) > 1:
		for _, op := range batch {
			if op.ev != nil {
				op.ev.ID = 0 // the rolled-back insert may have numbered it
			}
			op.err = nil
			op.wentLive, op.err = s.addOriginAlone(ctx, op)
		}
	default:
		batch[0].wentLive, batch[0].err = false, err
	}
}
