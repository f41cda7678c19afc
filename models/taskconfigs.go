package models

import (
	"context"
	"fmt"
	"time"
)

// CreateTaskConfig adds a validated task config to a stream.
func (s *Store) CreateTaskConfig(ctx context.Context, c *TaskConfig) error {
	if !ValidName(c.Name) {
		return NameError("name")
	}
	spec, err := ParseSpec(c.Type, c.Spec)
	if err != nil {
		return err
	}
	if err := s.checkTaskURLs(c.Type, spec); err != nil {
		return err
	}
	c.Spec, c.Version = spec, 1
	if err := s.db(ctx).Create(c).Error; err != nil {
		return conflict(err, "create task config "+c.Name)
	}
	return nil
}

// TaskConfigByID loads one of a stream's task configs.
func (s *Store) TaskConfigByID(ctx context.Context, streamID, id int64) (*TaskConfig, error) {
	var c TaskConfig
	if err := s.db(ctx).Where("id = ? AND stream_id = ?", id, streamID).First(&c).Error; err != nil {
		return nil, notFound(err, "task config")
	}
	return &c, nil
}

// ListTaskConfigs lists a stream's task configs by id.
func (s *Store) ListTaskConfigs(ctx context.Context, streamID int64) ([]TaskConfig, error) {
	var out []TaskConfig
	if err := s.db(ctx).Where("stream_id = ?", streamID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list task configs: %w", err)
	}
	return out, nil
}

// TaskConfigUpdate holds the fields of a task config to change; nil means
// unchanged. Spec, when set, replaces the type-specific fields.
type TaskConfigUpdate struct {
	Name    *string
	Enabled *bool
	Spec    []byte
}

// UpdateTaskConfig validates and applies a change, increasing Version.
func (s *Store) UpdateTaskConfig(ctx context.Context, streamID, id int64, up TaskConfigUpdate) (*TaskConfig, error) {
	c, err := s.TaskConfigByID(ctx, streamID, id)
	if err != nil {
		return nil, err
	}
	if up.Name != nil {
		if !ValidName(*up.Name) {
			return nil, NameError("name")
		}
		c.Name = *up.Name
	}
	if up.Enabled != nil {
		c.Enabled = *up.Enabled
	}
	if up.Spec != nil {
		spec, err := ParseSpec(c.Type, up.Spec)
		if err != nil {
			return nil, err
		}
		if err := s.checkTaskURLs(c.Type, spec); err != nil {
			return nil, err
		}
		c.Spec = spec
	}
	res := s.db(ctx).Model(&TaskConfig{}).Where("id = ? AND version = ?", c.ID, c.Version).Updates(map[string]any{
		"name": c.Name, "enabled": c.Enabled, "spec": c.Spec, "version": c.Version + 1, "updated_at": time.Now().UTC(),
	})
	if res.Error != nil {
		return nil, conflict(res.Error, "update task config")
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("task config %d changed concurrently, retry: %w", c.ID, ErrConflict)
	}
	return s.TaskConfigByID(ctx, streamID, id)
}

// DeleteTaskConfig removes a task config. Its tasks keep their history with
// no config (the compiler stops them).
func (s *Store) DeleteTaskConfig(ctx context.Context, streamID, id int64) error {
	res := s.db(ctx).Where("id = ? AND stream_id = ?", id, streamID).Delete(&TaskConfig{})
	if res.Error != nil {
		return fmt.Errorf("delete task config: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete task config: %w", ErrNotFound)
	}
	return nil
}
