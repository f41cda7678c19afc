package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portier/portier/internal/taskcost"
)

// Scheduler queries: placement, leases, fencing, status reports and drain.
//
// Concurrency: every mutation runs in one transaction. On Postgres the
// placement transaction first takes a transaction-scoped advisory lock (so
// two control-plane replicas never both count free capacity from the same
// snapshot) and claims pending rows with FOR UPDATE SKIP LOCKED; the reaper
// claims expired rows the same way. Every task update is conditioned on the
// epoch read, so a concurrent reassignment makes it a no-op instead of a
// second runner. SQLite runs one replica and serialises write transactions.

// ErrStaleEpoch is returned for a status report whose node or epoch is no
// longer the task's current assignment: the reporter must stop the task.
var ErrStaleEpoch = errors.New("stale epoch: the task was reassigned")

// activeStates are every state but stopped, spelled out so that queries can
// use the state index instead of scanning finished tasks.
var activeStates = []string{TaskPending, TaskAssigned, TaskStarting, TaskRunning, TaskBackoff, TaskFailed, TaskStopping}

// schedLockID is the Postgres advisory lock of the placement transaction.
const schedLockID = 0x706f72746965 // "portie"

// SchedTask is a task as the scheduler and a concierge see it. Description
// is the compiled description as stored (JSON).
type SchedTask struct {
	ID           int64      `gorm:"column:id" json:"id"`
	StreamID     int64      `gorm:"column:stream_id" json:"stream_id"`
	Type         string     `gorm:"column:type" json:"type"`
	Description  RawJSON    `gorm:"column:description" json:"description"`
	DesiredState string     `gorm:"column:desired_state" json:"desired_state"`
	State        string     `gorm:"column:state" json:"state"`
	NodeName     string     `gorm:"column:node_name" json:"node"`
	Epoch        int64      `gorm:"column:epoch" json:"epoch"`
	LeaseUntil   *time.Time `gorm:"column:lease_until" json:"lease_until,omitempty"`
	Restarts     int        `gorm:"column:restarts" json:"restarts"`
	Reason       string     `gorm:"column:reason" json:"reason,omitempty"`
}

// Placement reads what the scheduler needs from a description: its cost
// (taskcost units, at least 1) and the node labels it requires.
type Placement struct {
	Cost   int               `json:"cost"`
	Labels map[string]string `json:"labels,omitempty"`
}

// PlacementOf parses d's placement needs; a missing or zero cost counts as 1.
func PlacementOf(d RawJSON) Placement {
	var p Placement
	_ = json.Unmarshal(d, &p)
	if p.Cost < 1 {
		p.Cost = 1
	}
	return p
}

// SchedNode is a live concierge with the cost of the tasks it holds.
// Capacity and Used are in taskcost units (the node registers cores).
type SchedNode struct {
	Name     string
	Capacity int
	Labels   Labels
	Used     int
}

// PlaceDecision is the scheduler's answer for one pending task: a node, or
// the reason it stays pending.
type PlaceDecision struct {
	TaskID int64
	Node   string
	Reason string
}

// PlaceFunc decides where pending tasks go (a pure function; see portier/sched_place.go).
type PlaceFunc func(nodes []SchedNode, pending []SchedTask) []PlaceDecision

// Assignment is one task that PlaceTasks assigned.
type Assignment struct {
	TaskID int64
	Node   string
	Epoch  int64
}

const taskCols = "id, stream_id, type, description, desired_state, state, node_name, epoch, lease_until, restarts, reason"

// writeTx is Tx (which on SQLite takes the write lock first, see Tx).
func (s *Store) writeTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.Tx(ctx, fn)
}

func (s *Store) forUpdateSkipLocked(q *gorm.DB) *gorm.DB {
	if s.dialect == DialectPostgres {
		return q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
	}
	return q
}

// liveConcierges lists concierges that heartbeat at or after aliveSince and
// are not draining, with the cost their unstopped tasks use.
func (s *Store) liveConcierges(ctx context.Context, aliveSince time.Time) ([]SchedNode, error) {
	var nodes []Node
	if err := s.db(ctx).Where("role = ? AND draining = ? AND last_heartbeat >= ?", NodeRoleConcierge, false, aliveSince.UTC()).
		Order("name").Find(&nodes).Error; err != nil {
		return nil, fmt.Errorf("live concierges: %w", err)
	}
	used, err := s.usedCost(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SchedNode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, SchedNode{Name: n.Name, Capacity: taskcost.FromCores(n.Capacity), Labels: n.Labels, Used: used[n.Name]})
	}
	return out, nil
}

// usedCost sums, per node, the cost of every task it holds that is not
// stopped.
func (s *Store) usedCost(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		NodeName string `gorm:"column:node_name"`
		Used     int    `gorm:"column:used"`
	}
	if err := s.db(ctx).Table("tasks").Select("node_name, SUM(cost) AS used").
		Where("node_name <> '' AND state IN ?", activeStates).Group("node_name").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("used capacity: %w", err)
	}
	used := make(map[string]int, len(rows))
	for _, r := range rows {
		used[r.NodeName] = r.Used
	}
	return used, nil
}

// PlaceTasks assigns up to limit pending tasks that should run, using place
// to decide, in one transaction: each assigned task gets the node, state
// assigned, epoch+1 and a lease until now+lease; an unplaced task keeps state
// pending with the decision's reason.
func (s *Store) PlaceTasks(ctx context.Context, now time.Time, lease time.Duration, aliveSince time.Time, limit int, place PlaceFunc) ([]Assignment, error) {
	now = now.UTC()
	var out []Assignment
	err := s.writeTx(ctx, func(tx *Store) error {
		if tx.dialect == DialectPostgres {
			if err := tx.db(ctx).Exec("SELECT pg_advisory_xact_lock(?)", schedLockID).Error; err != nil {
				return fmt.Errorf("scheduler lock: %w", err)
			}
		}
		var pending []SchedTask
		q := tx.db(ctx).Table("tasks").Select(taskCols).
			Where("state = ? AND desired_state = ? AND node_name = ''", TaskPending, DesiredRunning).Order("id").Limit(lim(limit))
		if err := tx.forUpdateSkipLocked(q).Scan(&pending).Error; err != nil {
			return fmt.Errorf("pending tasks: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		nodes, err := tx.liveConcierges(ctx, aliveSince)
		if err != nil {
			return err
		}
		byID := make(map[int64]SchedTask, len(pending))
		for _, t := range pending {
			byID[t.ID] = t
		}
		perNode := map[string][]int64{}
		for _, d := range place(nodes, pending) {
			t, ok := byID[d.TaskID]
			if !ok {
				continue
			}
			if d.Node != "" {
				perNode[d.Node] = append(perNode[d.Node], d.TaskID)
				out = append(out, Assignment{TaskID: d.TaskID, Node: d.Node, Epoch: t.Epoch + 1})
				continue
			}
			if d.Reason != t.Reason {
				if err := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ?", t.ID, t.Epoch).
					Updates(map[string]any{"reason": d.Reason, "updated_at": now}).Error; err != nil {
					return fmt.Errorf("pending reason of task %d: %w", t.ID, err)
				}
			}
		}
		until := now.Add(lease)
		names := make([]string, 0, len(perNode))
		for n := range perNode {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			res := tx.db(ctx).Table("tasks").
				Where("id IN ? AND state = ? AND node_name = ''", perNode[n], TaskPending).
				Updates(map[string]any{
					"node_name": n, "state": TaskAssigned, "epoch": gorm.Expr("epoch + 1"),
					"lease_until": until, "reason": "", "updated_at": now,
				})
			if res.Error != nil {
				return fmt.Errorf("assign tasks to %s: %w", n, res.Error)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LeaseResult counts what ExpireLeases did.
type LeaseResult struct {
	Renewed    int
	Reassigned []int64
	Stopped    int
}

// ExpireLeases looks at tasks whose lease ended before now. A task whose
// concierge still heartbeats (at or after aliveSince, draining or not) gets
// its lease renewed to that heartbeat + lease; the others lose their node:
// back to pending when they should run, stopped when they should not. The
// old runner is fenced from then on (its reports name a node and epoch that
// are no longer the task's), and the next assignment raises the epoch.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time, lease time.Duration, aliveSince time.Time) (LeaseResult, error) {
	now = now.UTC()
	var res LeaseResult
	err := s.writeTx(ctx, func(tx *Store) error {
		var expired []SchedTask
		q := tx.db(ctx).Table("tasks").Select(taskCols).
			Where("node_name <> '' AND state IN ? AND (lease_until IS NULL OR lease_until < ?)", activeStates, now).Order("id")
		if err := tx.forUpdateSkipLocked(q).Scan(&expired).Error; err != nil {
			return fmt.Errorf("expired leases: %w", err)
		}
		if len(expired) == 0 {
			return nil
		}
		hb := map[string]*time.Time{}
		var nodes []Node
		names := map[string]bool{}
		for _, t := range expired {
			names[t.NodeName] = true
		}
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		if err := tx.db(ctx).Where("name IN ?", list).Find(&nodes).Error; err != nil {
			return fmt.Errorf("nodes of expired leases: %w", err)
		}
		for _, n := range nodes {
			hb[n.Name] = n.LastHeartbeat
		}
		renew := map[string][]int64{}
		var lost, stop []int64
		for _, t := range expired {
			if h := hb[t.NodeName]; h != nil && !h.Before(aliveSince) {
				renew[t.NodeName] = append(renew[t.NodeName], t.ID)
			} else if t.DesiredState == DesiredRunning {
				lost = append(lost, t.ID)
			} else {
				stop = append(stop, t.ID)
			}
		}
		for n, ids := range renew {
			if err := tx.db(ctx).Table("tasks").Where("id IN ?", ids).
				Update("lease_until", hb[n].UTC().Add(lease)).Error; err != nil {
				return fmt.Errorf("renew leases on %s: %w", n, err)
			}
			res.Renewed += len(ids)
		}
		for _, t := range expired {
			if !containsID(lost, t.ID) {
				continue
			}
			u := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ?", t.ID, t.Epoch).Updates(map[string]any{
				"node_name": "", "state": TaskPending, "lease_until": nil,
				"reason": fmt.Sprintf("concierge %s missed its lease", t.NodeName), "updated_at": now,
			})
			if u.Error != nil {
				return fmt.Errorf("reassign task %d: %w", t.ID, u.Error)
			}
			if u.RowsAffected == 1 {
				res.Reassigned = append(res.Reassigned, t.ID)
			}
		}
		if len(stop) > 0 {
			if err := tx.db(ctx).Table("tasks").Where("id IN ?", stop).Updates(map[string]any{
				"state": TaskStopped, "lease_until": nil, "updated_at": now,
			}).Error; err != nil {
				return fmt.Errorf("stop tasks of dead concierges: %w", err)
			}
			res.Stopped = len(stop)
		}
		return nil
	})
	return res, err
}

func schedString(v any) string {
	s, _ := v.(string)
	return s
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// AssignedTasks lists the tasks a concierge must reconcile: every task on
// it that is not stopped (including those whose desired state is stopped,
// which it must stop and report), by id.
func (s *Store) AssignedTasks(ctx context.Context, node string) ([]SchedTask, error) {
	var out []SchedTask
	if err := s.db(ctx).Table("tasks").Select(taskCols).
		Where("node_name = ? AND state IN ?", node, activeStates).Order("id").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("tasks of %s: %w", node, err)
	}
	return out, nil
}

// SchedTasksByID loads tasks by id (missing ids are left out).
func (s *Store) SchedTasksByID(ctx context.Context, ids []int64) ([]SchedTask, error) {
	var out []SchedTask
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.db(ctx).Table("tasks").Select(taskCols).Where("id IN ?", ids).Order("id").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("tasks by id: %w", err)
	}
	return out, nil
}

// StatusReport is a concierge's report of one state change of a task.
type StatusReport struct {
	Epoch    int64
	State    string
	ExitCode *int
	Error    string
	LogTail  string
	// Progress is a running task's latest progress as JSON (nil: none in
	// this report; a report of another state clears the stored one).
	Progress []byte
}

// ConciergeReportable reports whether a concierge may report state st.
func ConciergeReportable(st string) bool {
	switch st {
	case TaskStarting, TaskRunning, TaskBackoff, TaskFailed, TaskStopping, TaskStopped:
		return true
	}
	return false
}

// ReportTaskStatus applies one report: ReportTaskStatuses with one entry.
func (s *Store) ReportTaskStatus(ctx context.Context, node string, id int64, r StatusReport, now time.Time, lease time.Duration) (*SchedTask, error) {
	res, err := s.ReportTaskStatuses(ctx, node, []TaskReport{{TaskID: id, StatusReport: r}}, now, lease)
	if err != nil {
		return nil, err
	}
	return res[0].Task, res[0].Err
}

// TaskReport is a StatusReport for one task.
type TaskReport struct {
	TaskID int64
	StatusReport
}

// ReportResult is the outcome of one TaskReport: the task as it is now, or
// why the report was refused (ErrStaleEpoch, ErrNotFound).
type ReportResult struct {
	Task *SchedTask
	Err  error
	// Prev is the task's state before the report: with Task.State it tells
	// a change from a repeat (a progress sample).
	Prev string
	// Failed: the report is the first failure (backoff or failed) after
	// the task last ran well, or ever; its retries that fail again are not.
	// Recovered: the report is the first "running" after such a failure.
	// (The task.failed and task.recovered webhooks.) A task counts as
	// failing while its last_error is set: a failure's report sets it, a
	// running report clears it.
	Failed, Recovered bool
}

// MaxReportBatch bounds the reports of one ReportTaskStatuses call.
const MaxReportBatch = 1000

// ReportTaskStatuses applies a concierge's reports, in order, in one
// transaction. A report is accepted if node and epoch are the task's current
// assignment (else ErrStaleEpoch) and renews the lease. A start after a
// failure counts as a restart; the first RUNNING of a start sets started_at.
// Tasks whose changes are alike (the usual burst of "running") are updated
// by one statement, so a batch costs a few statements and one commit rather
// than a transaction per report.
func (s *Store) ReportTaskStatuses(ctx context.Context, node string, reports []TaskReport, now time.Time, lease time.Duration) ([]ReportResult, error) {
	if len(reports) > MaxReportBatch {
		return nil, fmt.Errorf("%d reports in one batch, at most %d", len(reports), MaxReportBatch)
	}
	now = now.UTC()
	out := make([]ReportResult, len(reports))
	err := s.writeTx(ctx, func(tx *Store) error {
		ids := make([]int64, 0, len(reports))
		for _, r := range reports {
			ids = append(ids, r.TaskID)
		}
		var rows []SchedTask
		q := tx.db(ctx).Table("tasks").Select(taskCols).Where("id IN ?", ids).Order("id")
		if tx.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Scan(&rows).Error; err != nil {
			return fmt.Errorf("load reported tasks: %w", err)
		}
		tasks := make(map[int64]*SchedTask, len(rows))
		for i := range rows {
			tasks[rows[i].ID] = &rows[i]
		}
		var failingIDs []int64
		if err := tx.db(ctx).Table("tasks").Where("id IN ? AND last_error <> ''", ids).Pluck("id", &failingIDs).Error; err != nil {
			return fmt.Errorf("load failing tasks: %w", err)
		}
		failing := make(map[int64]bool, len(failingIDs))
		for _, id := range failingIDs {
			failing[id] = true
		}
		// Each task's reports fold into one set of column changes.
		changes := map[int64]map[string]any{}
		var order []int64
		for i, r := range reports {
			t := tasks[r.TaskID]
			if t == nil {
				out[i].Err = fmt.Errorf("task %d: %w", r.TaskID, ErrNotFound)
				continue
			}
			out[i].Prev = t.State
			cols, err := applyReport(t, node, r.StatusReport, now, lease)
			if err != nil {
				out[i].Err = err
				continue
			}
			switch r.State {
			case TaskBackoff, TaskFailed:
				out[i].Failed, failing[t.ID] = !failing[t.ID], true
			case TaskRunning:
				out[i].Recovered, failing[t.ID] = failing[t.ID], false
			}
			if changes[t.ID] == nil {
				changes[t.ID] = map[string]any{}
				order = append(order, t.ID)
			}
			maps.Copy(changes[t.ID], cols)
			snap := *t
			out[i].Task = &snap
		}
		// Alike changes share a statement. The rows are locked (Postgres)
		// or the transaction is the only writer (SQLite), so the epochs read
		// above still hold.
		groups := map[string][]int64{}
		var keys []string
		for _, id := range order {
			k := colsKey(changes[id])
			if groups[k] == nil {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], id)
		}
		for _, k := range keys {
			ids := groups[k]
			if err := tx.db(ctx).Table("tasks").Where("id IN ?", ids).Updates(changes[ids[0]]).Error; err != nil {
				return fmt.Errorf("report tasks %v: %w", ids, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyReport checks one report against t (the task as the batch has left
// it so far), advances t and returns the columns to write.
func applyReport(t *SchedTask, node string, r StatusReport, now time.Time, lease time.Duration) (map[string]any, error) {
	if t.State == TaskStopped && t.NodeName == node && t.Epoch == r.Epoch {
		return nil, fmt.Errorf("task %d is already stopped: %w", t.ID, ErrStaleEpoch)
	}
	if t.NodeName != node || t.Epoch != r.Epoch {
		return nil, fmt.Errorf("task %d epoch %d on %s (now epoch %d on %q): %w", t.ID, r.Epoch, node, t.Epoch, t.NodeName, ErrStaleEpoch)
	}
	until := now.Add(lease)
	cols := map[string]any{
		"state": r.State, "lease_until": until, "updated_at": now,
	}
	if r.State == TaskStopped && t.DesiredState == DesiredRunning {
		// The runner gave the task up although it should run: place it again.
		cols = map[string]any{
			"state": TaskPending, "node_name": "", "lease_until": nil,
			"reason": "stopped by concierge " + node, "updated_at": now,
		}
		t.NodeName, t.LeaseUntil = "", nil
	} else {
		t.LeaseUntil = &until
	}
	if r.ExitCode != nil {
		cols["last_exit_code"] = *r.ExitCode
	}
	if r.Error != "" || r.State == TaskRunning {
		cols["last_error"] = r.Error
	}
	if r.LogTail != "" {
		cols["log_tail"] = r.LogTail
	}
	switch {
	case r.State == TaskRunning && r.Progress != nil:
		cols["progress"] = string(r.Progress)
	case r.State != TaskRunning:
		cols["progress"] = ""
	}
	if r.State == TaskRunning && t.State != TaskRunning {
		cols["started_at"] = now
	}
	if r.State == TaskStarting && (t.State == TaskBackoff || t.State == TaskFailed) {
		t.Restarts++
		cols["restarts"] = t.Restarts
	}
	if r.State == TaskRunning || r.State == TaskStarting {
		cols["reason"] = ""
	}
	t.State = schedString(cols["state"])
	if v, ok := cols["reason"]; ok {
		t.Reason = schedString(v)
	}
	return cols, nil
}

// colsKey is a canonical spelling of a set of column changes, so that alike
// changes can share an UPDATE.
func colsKey(cols map[string]any) string {
	keys := slices.Sorted(maps.Keys(cols))
	var b strings.Builder
	for _, k := range keys {
		v := cols[k]
		if tm, ok := v.(time.Time); ok {
			v = tm.UnixNano()
		}
		fmt.Fprintf(&b, "%s=%T:%v;", k, v, v)
	}
	return b.String()
}

// DrainConcierge marks a concierge draining (the scheduler places nothing
// more on it) and hands back every task on it that should run: pending
// again, to be placed elsewhere (with epoch+1, as every assignment). The old runner keeps running
// until the new one runs (make before break, bounded by the concierge).
func (s *Store) DrainConcierge(ctx context.Context, node string, now time.Time, ev *AuditEvent) ([]int64, error) {
	now = now.UTC()
	var ids []int64
	err := s.writeTx(ctx, func(tx *Store) error {
		res := tx.db(ctx).Model(&Node{}).Where("name = ? AND role = ?", node, NodeRoleConcierge).Update("draining", true)
		if res.Error != nil {
			return fmt.Errorf("drain %s: %w", node, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("concierge %s: %w", node, ErrNotFound)
		}
		var rows []SchedTask
		// Ascending ids, like every other locker of several task rows
		// (ReportTaskStatuses, StopStreamTasks), so that they never deadlock.
		q := tx.db(ctx).Table("tasks").Select(taskCols).
			Where("node_name = ? AND desired_state = ? AND state IN ?", node, DesiredRunning, activeStates).Order("id")
		if tx.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Scan(&rows).Error; err != nil {
			return fmt.Errorf("tasks of %s: %w", node, err)
		}
		for _, t := range rows {
			u := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ?", t.ID, t.Epoch).Updates(map[string]any{
				"node_name": "", "state": TaskPending, "lease_until": nil,
				"reason": "handed back by draining concierge " + node, "updated_at": now,
			})
			if u.Error != nil {
				return fmt.Errorf("hand back task %d: %w", t.ID, u.Error)
			}
			if u.RowsAffected == 1 {
				ids = append(ids, t.ID)
			}
		}
		if ev != nil {
			ev.Details = MustJSON(map[string]any{"tasks": ids})
			return tx.Audit(ctx, ev)
		}
		return nil
	})
	return ids, err
}

// TasksChangeStamp is a cheap fingerprint of the tasks that are not
// stopped (read through the state index, so finished tasks piling up do not
// make it slower) as far as concierges' assignments go: it changes whenever
// such a task is created, deleted, assigned or reassigned (epoch), loses
// its node, is asked to stop (desired state) or finishes. State reports do
// not change it: they change no assignment, and a stamp that moved with
// every report woke every long poll several times a second while tasks
// started. The scheduler polls it to notice changes made by other code
// paths and other replicas.
func (s *Store) TasksChangeStamp(ctx context.Context) (string, error) {
	var r struct {
		N int64 `gorm:"column:n"`
		E int64 `gorm:"column:e"`
		R int64 `gorm:"column:r"`
		A int64 `gorm:"column:a"`
	}
	q := "SELECT COUNT(*) AS n, COALESCE(SUM(epoch), 0) AS e, " +
		"COALESCE(SUM(CASE WHEN desired_state = 'running' THEN 1 ELSE 0 END), 0) AS r, " +
		"COALESCE(SUM(CASE WHEN node_name <> '' THEN 1 ELSE 0 END), 0) AS a FROM tasks WHERE state IN ?"
	if err := s.db(ctx).Raw(q, activeStates).Scan(&r).Error; err != nil {
		return "", fmt.Errorf("tasks change stamp: %w", err)
	}
	return fmt.Sprintf("%d/%d/%d/%d", r.N, r.E, r.R, r.A), nil
}

// StampNoActiveTasks reports whether a TasksChangeStamp counted no active
// task: then there is nothing to place and no lease to expire until the
// stamp changes.
func StampNoActiveTasks(stamp string) bool { return strings.HasPrefix(stamp, "0/") }

// TaskStateCount is how many tasks are in a state with a desired state.
type TaskStateCount struct {
	State        string `gorm:"column:state"`
	DesiredState string `gorm:"column:desired_state"`
	N            int64  `gorm:"column:n"`
}

// TaskStateCounts counts tasks by state and desired state (for metrics).
func (s *Store) TaskStateCounts(ctx context.Context) ([]TaskStateCount, error) {
	var out []TaskStateCount
	if err := s.db(ctx).Table("tasks").Select("state, desired_state, COUNT(*) AS n").
		Group("state, desired_state").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("task state counts: %w", err)
	}
	return out, nil
}
