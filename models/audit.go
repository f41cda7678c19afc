package models

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Audit objects are named "kind/id", one scheme everywhere (migration 00008
// renamed the older "stream:1" and "node:a" ones).

// StreamObject is the audit object of a stream.
func StreamObject(id int64) string { return "stream/" + strconv.FormatInt(id, 10) }

// NodeObject is the audit object of a cluster node.
func NodeObject(name string) string { return "node/" + name }

// PathObject is the audit object of a requested app/name that matched no
// stream (a refused publish or play of a path nobody configured).
func PathObject(app, name string) string { return "path/" + app + "/" + name }

// Audit results.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

// Audit records an event. A zero Time is now.
func (s *Store) Audit(ctx context.Context, e *AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Result == "" {
		e.Result = ResultOK
	}
	if err := s.db(ctx).Create(e).Error; err != nil {
		return fmt.Errorf("write audit event %s: %w", e.Action, err)
	}
	return nil
}

// auditMany records events in one multi-row INSERT (defaults as Audit).
func (s *Store) auditMany(ctx context.Context, evs []*AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for _, e := range evs {
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Result == "" {
			e.Result = ResultOK
		}
	}
	if err := s.db(ctx).Create(evs).Error; err != nil {
		return fmt.Errorf("write %d audit events: %w", len(evs), err)
	}
	return nil
}

// AuditFilter selects audit events. Zero values select everything.
type AuditFilter struct {
	Action string
	Actor  string
	Object string
	Since  time.Time
	Until  time.Time // events before it (zero: no end)
	// ExceptActions leaves these actions out (the UI hides play
	// authorisations, which outnumber everything else, unless asked).
	ExceptActions []string
	Limit         int
	Offset        int
}

// ListAudit lists audit events, newest first, with the total matching count.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, int64, error) {
	q := s.db(ctx).Model(&AuditEvent{})
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Object != "" {
		q = q.Where("object = ?", f.Object)
	}
	if !f.Since.IsZero() {
		q = q.Where("time >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("time < ?", f.Until.UTC())
	}
	if len(f.ExceptActions) > 0 {
		q = q.Where("action NOT IN ?", f.ExceptActions)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count audit events: %w", err)
	}
	var out []AuditEvent
	if err := q.Order("id DESC").Limit(lim(f.Limit)).Offset(f.Offset).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("list audit events: %w", err)
	}
	return out, total, nil
}
