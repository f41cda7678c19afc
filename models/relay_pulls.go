package models

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/portier/portier/internal/nodewire"
)

// Relay pulls: pull tasks whose description has RelayPull (an rtsp:// or
// rtsps:// source) run on an origin relay with nodewire.CapRTSPPull rather
// than on a concierge. The task row is the same: NodeName is the origin,
// Epoch rises with each assignment, the lease is renewed while the origin
// heartbeats (ExpireLeases, as for concierges). PlaceRelayPulls assigns
// them; OriginPulls turns an origin's heartbeat into its orders and the
// tasks' states. With no such origin alive they stay pending and the
// concierge placement (PlaceTasks) runs them with ffmpeg.
//
// Concurrency: as the scheduler's (tasks_sched.go): every task update is
// conditioned on the epoch read. PlaceRelayPulls is one transaction;
// OriginPulls, called on every origin heartbeat, reads outside one and
// takes the write lock only when something changed.

// relayPullLike matches the stored description of a relay pull (a cheap
// prefilter; the JSON is decoded to be sure).
const relayPullLike = `%"relay_pull":{%`

// PullOrigin is an alive, not draining origin with nodewire.CapRTSPPull:
// Pulls is how many relay pull tasks it holds, Connections its load.
type PullOrigin struct {
	Name        string
	Pulls       int
	Connections int
}

// RelayPullPlaceFunc picks an origin for each task (a pure function; see
// portier/sched). A decision without a Node leaves the task pending.
type RelayPullPlaceFunc func(origins []PullOrigin, tasks []SchedTask) []PlaceDecision

// pullOrigins lists the origins alive at or after aliveSince that can pull,
// with the relay pull tasks each holds.
func (s *Store) pullOrigins(ctx context.Context, aliveSince time.Time) ([]PullOrigin, error) {
	var nodes []Node
	if err := s.db(ctx).Where("role = ? AND draining = ? AND last_heartbeat >= ?", NodeRoleOrigin, false, aliveSince.UTC()).
		Order("name").Find(&nodes).Error; err != nil {
		return nil, fmt.Errorf("live origins: %w", err)
	}
	var rows []struct {
		NodeName string
		N        int
	}
	if err := s.db(ctx).Table("tasks").Select("node_name, COUNT(*) AS n").
		Where("node_name <> '' AND type = ? AND state IN ? AND description LIKE ?", TypePull, activeStates, relayPullLike).
		Group("node_name").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("relay pulls per origin: %w", err)
	}
	held := map[string]int{}
	for _, r := range rows {
		held[r.NodeName] = r.N
	}
	out := make([]PullOrigin, 0, len(nodes))
	for _, n := range nodes {
		if !nodewire.HasCapability(n.Capabilities, nodewire.CapRTSPPull) {
			continue
		}
		out = append(out, PullOrigin{Name: n.Name, Pulls: held[n.Name], Connections: n.Load.Connections})
	}
	return out, nil
}

// isRelayPull reports whether a stored description is a relay pull's.
func isRelayPull(d RawJSON) bool {
	var td TaskDescription
	return json.Unmarshal(d, &td) == nil && td.RelayPull != nil && td.RelayPull.Source != ""
}

// PlaceRelayPulls assigns, in one transaction, the relay pull tasks that
// should run and have no live runner (pending, or held by an origin that
// is no longer alive at aliveSince, draining or able to pull: a dead
// origin's pulls move within its alive window, not its lease) to alive origins that can pull, as place
// decides: node, state assigned, epoch+1, lease until now+lease. Tasks of
// dead origins that find no origin go back to pending, where PlaceTasks
// may give them to a concierge. It returns the assignments.
func (s *Store) PlaceRelayPulls(ctx context.Context, now time.Time, lease time.Duration, aliveSince time.Time, place RelayPullPlaceFunc) ([]Assignment, error) {
	now = now.UTC()
	// Every placement round calls this: without a relay pull to look at,
	// it does not take the write lock.
	var n int64
	if err := s.db(ctx).Table("tasks").
		Where("type = ? AND desired_state = ? AND state IN ? AND description LIKE ?", TypePull, DesiredRunning, activeStates, relayPullLike).
		Count(&n).Error; err != nil {
		return nil, fmt.Errorf("count relay pull tasks: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	var out []Assignment
	err := s.writeTx(ctx, func(tx *Store) error {
		var cand []SchedTask
		q := tx.db(ctx).Table("tasks").Select(taskCols).
			Where("type = ? AND desired_state = ? AND state IN ? AND description LIKE ?", TypePull, DesiredRunning, activeStates, relayPullLike).
			Order("id")
		if err := tx.forUpdateSkipLocked(q).Scan(&cand).Error; err != nil {
			return fmt.Errorf("relay pull tasks: %w", err)
		}
		if len(cand) == 0 {
			return nil
		}
		origins, err := tx.pullOrigins(ctx, aliveSince)
		if err != nil {
			return err
		}
		// A runner that is dead, draining or no longer able to pull (a
		// restart as an older version) loses its pulls.
		alive := map[string]bool{}
		for _, o := range origins {
			alive[o.Name] = true
		}
		var todo []SchedTask
		for _, t := range cand {
			free := t.NodeName == "" && t.State == TaskPending
			if (free || (t.NodeName != "" && !alive[t.NodeName])) && isRelayPull(t.Description) {
				todo = append(todo, t)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		byID := make(map[int64]SchedTask, len(todo))
		for _, t := range todo {
			byID[t.ID] = t
		}
		decided := map[int64]bool{}
		for _, d := range place(origins, todo) {
			t, ok := byID[d.TaskID]
			if !ok || d.Node == "" {
				continue
			}
			u := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ?", t.ID, t.Epoch).Updates(map[string]any{
				"node_name": d.Node, "state": TaskAssigned, "epoch": t.Epoch + 1, "lease_until": now.Add(lease),
				"reason": relayPullReason(t), "updated_at": now,
			})
			if u.Error != nil {
				return fmt.Errorf("assign relay pull %d to %s: %w", t.ID, d.Node, u.Error)
			}
			if u.RowsAffected == 1 {
				decided[t.ID] = true
				out = append(out, Assignment{TaskID: t.ID, Node: d.Node, Epoch: t.Epoch + 1})
			}
		}
		for _, t := range todo {
			if decided[t.ID] || t.NodeName == "" {
				continue
			}
			u := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ?", t.ID, t.Epoch).Updates(map[string]any{
				"node_name": "", "state": TaskPending, "lease_until": nil,
				"reason": fmt.Sprintf("origin %s is not alive (or cannot pull)", t.NodeName), "updated_at": now,
			})
			if u.Error != nil {
				return fmt.Errorf("free relay pull %d: %w", t.ID, u.Error)
			}
		}
		return nil
	})
	return out, err
}

// relayPullReason says why a relay pull moved (empty for a first start).
func relayPullReason(t SchedTask) string {
	if t.NodeName != "" {
		return fmt.Sprintf("moved: origin %s is not alive (or cannot pull)", t.NodeName)
	}
	if strings.HasPrefix(t.Reason, "origin ") {
		return "moved: " + t.Reason
	}
	return ""
}

// originPullRow is one task held by an origin, with its stream.
type originPullRow struct {
	ID            int64           `gorm:"column:id"`
	Epoch         int64           `gorm:"column:epoch"`
	DesiredState  string          `gorm:"column:desired_state"`
	State         string          `gorm:"column:state"`
	LastError     string          `gorm:"column:last_error"`
	Restarts      int             `gorm:"column:restarts"`
	Description   TaskDescription `gorm:"column:description"`
	App           string          `gorm:"column:app"`
	Name          string          `gorm:"column:name"`
	Key           string          `gorm:"column:publish_key"`
	StreamEnabled bool            `gorm:"column:enabled"`
}

// OriginPulls answers an origin's heartbeat: the pulls it must run (the
// full set: relay pull tasks it holds that should run, of enabled
// streams, with the stream's path and current key), after recording what
// its report says of each: playing is running (started_at on the first),
// failing is backoff with the error, a task that should no longer run is
// stopped (the origin stops it on this answer). Only changes are written.
func (s *Store) OriginPulls(ctx context.Context, node string, reports []nodewire.PullReport, now time.Time) ([]nodewire.PullOrder, error) {
	now = now.UTC()
	byTask := make(map[int64]nodewire.PullReport, len(reports))
	for _, r := range reports {
		byTask[r.TaskID] = r
	}
	// Read first, without the write lock (most heartbeats change nothing);
	// each change is then conditioned on the epoch and node read, so a
	// task moved or replaced meanwhile is left alone.
	var rows []originPullRow
	if err := s.db(ctx).Table("tasks").
		Select("tasks.id, tasks.epoch, tasks.desired_state, tasks.state, tasks.last_error, tasks.restarts, tasks.description, "+
			"applications.name AS app, streams.name AS name, streams.publish_key, streams.enabled").
		Joins("JOIN streams ON streams.id = tasks.stream_id").
		Joins("JOIN applications ON applications.id = streams.application_id").
		Where("tasks.node_name = ? AND tasks.type = ? AND tasks.state IN ? AND tasks.description LIKE ?",
			node, TypePull, activeStates, relayPullLike).
		Order("tasks.id").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("pulls of origin %s: %w", node, err)
	}
	orders := []nodewire.PullOrder{}
	type change struct {
		id, epoch int64
		cols      map[string]any
	}
	var changes []change
	paths := map[string]bool{}
	for _, r := range rows {
		if r.Description.RelayPull == nil {
			continue
		}
		path := r.App + "/" + r.Name
		var cols map[string]any
		switch {
		case r.DesiredState == DesiredRunning && r.StreamEnabled && paths[path]:
			// One publisher per path: a second pull config of the stream
			// waits (the relay would refuse the whole set).
			const msg = "another pull on this origin feeds the stream"
			if r.State != TaskBackoff || r.LastError != msg {
				cols = map[string]any{"state": TaskBackoff, "last_error": msg}
			}
		default:
			cols = originPullUpdate(r, byTask, now)
			if r.DesiredState == DesiredRunning && r.StreamEnabled {
				paths[path] = true
				orders = append(orders, nodewire.PullOrder{TaskID: r.ID, Path: path, Key: r.Key, URL: r.Description.RelayPull.Source})
			}
		}
		if cols != nil {
			cols["updated_at"] = now
			changes = append(changes, change{r.ID, r.Epoch, cols})
		}
	}
	if len(changes) == 0 {
		return orders, nil
	}
	err := s.writeTx(ctx, func(tx *Store) error {
		for _, c := range changes {
			if err := tx.db(ctx).Table("tasks").Where("id = ? AND epoch = ? AND node_name = ?", c.id, c.epoch, node).
				Updates(c.cols).Error; err != nil {
				return fmt.Errorf("pull task %d state: %w", c.id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return orders, nil
}

// originPullUpdate is the change an origin's heartbeat makes to one of its
// pull tasks (nil: none).
func originPullUpdate(r originPullRow, byTask map[int64]nodewire.PullReport, now time.Time) map[string]any {
	switch {
	case r.DesiredState != DesiredRunning:
		return map[string]any{"state": TaskStopped, "lease_until": nil}
	case !r.StreamEnabled:
		if r.State == TaskBackoff && r.LastError == "stream disabled" {
			return nil
		}
		return map[string]any{"state": TaskBackoff, "last_error": "stream disabled"}
	}
	rep, ok := byTask[r.ID]
	switch {
	case !ok:
		return nil // not started yet (it starts on this answer)
	case rep.Playing && r.State != TaskRunning:
		return map[string]any{"state": TaskRunning, "started_at": now, "last_error": "", "reason": ""}
	case !rep.Playing && rep.Error != "" && (r.State != TaskBackoff || r.LastError != rep.Error || int(rep.Failures) > r.Restarts):
		// Restarts follows the origin's count of failed sessions (it
		// never goes down: a move to another origin starts a new count).
		return map[string]any{"state": TaskBackoff, "last_error": rep.Error, "restarts": max(r.Restarts, int(rep.Failures))}
	case !rep.Playing && rep.Error == "" && r.State == TaskAssigned:
		return map[string]any{"state": TaskStarting}
	}
	return nil
}
