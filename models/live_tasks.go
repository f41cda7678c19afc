package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// CompileConfigs lists a stream's enabled task configs, by id.
func (s *Store) CompileConfigs(ctx context.Context, streamID int64) ([]TaskConfig, error) {
	var out []TaskConfig
	if err := s.db(ctx).Where("stream_id = ? AND enabled = ?", streamID, true).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("task configs of stream %d: %w", streamID, err)
	}
	return out, nil
}

// CompileConfig loads one task config (ErrNotFound when deleted).
func (s *Store) CompileConfig(ctx context.Context, id int64) (*TaskConfig, error) {
	var c TaskConfig
	if err := s.db(ctx).First(&c, id).Error; err != nil {
		return nil, notFound(err, "task config")
	}
	return &c, nil
}

// ActiveConfigTask returns the task of a config that should be running now
// (desired state running), or ErrNotFound.
func (s *Store) ActiveConfigTask(ctx context.Context, configID int64) (*Task, error) {
	var t Task
	err := s.db(ctx).Where("config_id = ? AND desired_state = ?", configID, DesiredRunning).Order("id DESC").First(&t).Error
	if err != nil {
		return nil, notFound(err, "active task of config")
	}
	return &t, nil
}

// CreateCompiledTask inserts a newly compiled task unless the config
// already has an active one (then it returns that one and created=false):
// repeated live events never start a config twice.
func (s *Store) CreateCompiledTask(ctx context.Context, t *Task) (out *Task, created bool, err error) {
	err = s.Tx(ctx, func(tx *Store) error {
		if t.ConfigID != nil {
			cur, err := tx.ActiveConfigTask(ctx, *t.ConfigID)
			if err == nil {
				out = cur
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if err := tx.db(ctx).Create(t).Error; err != nil {
			return fmt.Errorf("create task: %w", err)
		}
		out, created = t, true
		return nil
	})
	return out, created, err
}

// stopCols are the columns set when a task's desired state becomes stopped:
// a task no concierge holds yet is stopped at once.
func stopCols(reason string) map[string]any {
	return map[string]any{
		"desired_state": DesiredStopped,
		"state":         gorm.Expr("CASE WHEN node_name = '' THEN ? ELSE state END", TaskStopped),
		"reason":        reason,
		"updated_at":    time.Now().UTC(),
	}
}

// StopStreamTasks sets desired state stopped on every running task of a
// stream except those of the given types (pull tasks feed the stream and
// outlive its publishes). It returns how many tasks it stopped.
func (s *Store) StopStreamTasks(ctx context.Context, streamID int64, reason string, exceptTypes ...string) (int64, error) {
	q := s.db(ctx).Model(&Task{}).Where("stream_id = ? AND desired_state = ?", streamID, DesiredRunning)
	if len(exceptTypes) > 0 {
		q = q.Where("type NOT IN ?", exceptTypes)
	}
	res := q.Updates(stopCols(reason))
	if res.Error != nil {
		return 0, fmt.Errorf("stop tasks of stream %d: %w", streamID, res.Error)
	}
	return res.RowsAffected, nil
}

// StopCompiledTask sets one task's desired state to stopped.
func (s *Store) StopCompiledTask(ctx context.Context, taskID int64, reason string) error {
	res := s.db(ctx).Model(&Task{}).Where("id = ? AND desired_state = ?", taskID, DesiredRunning).Updates(stopCols(reason))
	if res.Error != nil {
		return fmt.Errorf("stop task %d: %w", taskID, res.Error)
	}
	return nil
}

// ReplaceCompiledTask stops old and inserts next in one transaction.
func (s *Store) ReplaceCompiledTask(ctx context.Context, oldID int64, next *Task, reason string) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.StopCompiledTask(ctx, oldID, reason); err != nil {
			return err
		}
		if err := tx.db(ctx).Create(next).Error; err != nil {
			return fmt.Errorf("create task: %w", err)
		}
		return nil
	})
}

// SetTaskConfigVersion records that a running task already matches a newer
// config version (an edit that did not change the command).
func (s *Store) SetTaskConfigVersion(ctx context.Context, taskID, version int64) error {
	res := s.db(ctx).Model(&Task{}).Where("id = ?", taskID).
		Updates(map[string]any{"config_version": version, "updated_at": time.Now().UTC()})
	if res.Error != nil {
		return fmt.Errorf("update task %d: %w", taskID, res.Error)
	}
	return nil
}
