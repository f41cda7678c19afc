package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// TaskFilter selects tasks for ListTasks. Zero values select everything.
type TaskFilter struct {
	StreamID int64
	OwnerID  int64 // only tasks of streams owned by this user
	State    string
	NodeName string
	// ConfigID: only the runs of this task config (its run history).
	ConfigID int64
	// LatestPerConfig: only the newest task of each task config (a task
	// whose config was deleted counts as its own config), the one row per
	// config that lists show; earlier runs are its history.
	LatestPerConfig bool
	Limit           int
	Offset          int
}

// ListTasks lists tasks, newest first, with the total matching count.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter) ([]Task, int64, error) {
	q := s.db(ctx).Model(&Task{})
	if f.StreamID != 0 {
		q = q.Where("stream_id = ?", f.StreamID)
	}
	if f.OwnerID != 0 {
		q = q.Where("stream_id IN (SELECT id FROM streams WHERE owner_id = ?)", f.OwnerID)
	}
	if f.State != "" {
		q = q.Where("state = ?", f.State)
	}
	if f.NodeName != "" {
		q = q.Where("node_name = ?", f.NodeName)
	}
	if f.ConfigID != 0 {
		q = q.Where("config_id = ?", f.ConfigID)
	}
	if f.LatestPerConfig {
		// No newer task of the same config (tasks_config index); a task
		// without a config has no newer sibling.
		q = q.Where("NOT EXISTS (SELECT 1 FROM tasks AS newer WHERE newer.config_id = tasks.config_id AND newer.id > tasks.id)")
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count tasks: %w", err)
	}
	var out []Task
	if err := q.Order("id DESC").Limit(lim(f.Limit)).Offset(f.Offset).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	return out, total, nil
}

// TaskRuns counts the tasks (runs) of each of the given task configs.
func (s *Store) TaskRuns(ctx context.Context, configIDs []int64) (map[int64]int, error) {
	out := make(map[int64]int, len(configIDs))
	if len(configIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		ConfigID int64
		N        int
	}
	err := s.db(ctx).Model(&Task{}).Select("config_id, COUNT(*) AS n").
		Where("config_id IN ?", configIDs).Group("config_id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count task runs: %w", err)
	}
	for _, r := range rows {
		out[r.ConfigID] = r.N
	}
	return out, nil
}

// BeforeCreate sets Cost from the description: a missing, zero or negative
// cost counts as 1, as in PlacementOf.
func (t *Task) BeforeCreate(*gorm.DB) error {
	t.Cost = max(t.Description.Cost, 1)
	return nil
}

// TaskByID loads a task.
func (s *Store) TaskByID(ctx context.Context, id int64) (*Task, error) {
	var t Task
	if err := s.db(ctx).First(&t, id).Error; err != nil {
		return nil, notFound(err, "task")
	}
	return &t, nil
}

// RequestTaskRestart asks for a task to be restarted: it goes back to pending
// with a new epoch (so its current runner, fenced by the old epoch, stops it)
// and is scheduled again. Only tasks that should run can be restarted.
func (s *Store) RequestTaskRestart(ctx context.Context, id int64, reason string) (*Task, error) {
	var t *Task
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		if t, err = tx.TaskByID(ctx, id); err != nil {
			return err
		}
		if t.DesiredState != DesiredRunning {
			return fmt.Errorf("task %d is not meant to run (its stream is not live or its config is off): %w", id, ErrInUse)
		}
		res := tx.db(ctx).Model(&Task{}).Where("id = ? AND epoch = ?", id, t.Epoch).Updates(map[string]any{
			"state": TaskPending, "node_name": "", "lease_until": nil, "epoch": t.Epoch + 1,
			"restarts": t.Restarts + 1, "reason": reason, "updated_at": time.Now().UTC(),
		})
		if res.Error != nil {
			return fmt.Errorf("restart task: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("task %d changed concurrently, retry: %w", id, ErrConflict)
		}
		t, err = tx.TaskByID(ctx, id)
		return err
	})
	return t, err
}
