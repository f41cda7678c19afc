package core

import (
	"context"
	"errors"
	"strconv"

	"github.com/portier/portier/models"
)

// ConfigObject is the audit object of a task config.
func ConfigObject(streamID, id int64) string {
	return "stream/" + strconv.FormatInt(streamID, 10) + "/task-config/" + strconv.FormatInt(id, 10)
}

// CreateTaskConfig adds tc (StreamID, Type, Name, Enabled, Spec set) to
// stream st and compiles its task if the stream is live.
func (c *Core) CreateTaskConfig(ctx context.Context, by Actor, st *models.Stream, tc *models.TaskConfig) error {
	if err := CheckTaskConfig(tc.Type, &tc.Name, tc.Spec); err != nil {
		return err
	}
	tc.StreamID = st.ID
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		if err := tx.CreateTaskConfig(ctx, tc); err != nil {
			return conflict(err, "name", "stream %s already has a task config named %s", st.Name, tc.Name)
		}
		return tx.Audit(ctx, c.event(by, "task_config.create", ConfigObject(st.ID, tc.ID), map[string]any{"type": tc.Type, "name": tc.Name}))
	})
	if err != nil {
		return err
	}
	c.live.TaskConfigChanged(ctx, tc.ID)
	return nil
}

// CheckTaskConfig validates a config's name (nil: unchanged) and spec (nil:
// unchanged) without writing, and returns every field error at once
// (joined; FieldErrors lists them), so a form can show them together.
func CheckTaskConfig(typ string, name *string, spec []byte) error {
	var errs []error
	if name != nil {
		errs = append(errs, checkNames("name", *name))
	}
	if spec != nil {
		if _, err := models.ParseSpec(typ, spec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UpdateTaskConfig changes a task config and replaces its running task.
// The audit event records the config's name, enabled flag and new version,
// whichever surface made the change.
func (c *Core) UpdateTaskConfig(ctx context.Context, by Actor, st *models.Stream, tc *models.TaskConfig, up models.TaskConfigUpdate) (*models.TaskConfig, error) {
	if err := CheckTaskConfig(tc.Type, up.Name, up.Spec); err != nil {
		return nil, err
	}
	var out *models.TaskConfig
	err := c.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		if out, err = tx.UpdateTaskConfig(ctx, st.ID, tc.ID, up); err != nil {
			if up.Name != nil {
				return conflict(err, "name", "stream %s already has a task config named %s", st.Name, *up.Name)
			}
			return err
		}
		return tx.Audit(ctx, c.event(by, "task_config.update", ConfigObject(st.ID, tc.ID),
			map[string]any{"name": out.Name, "enabled": out.Enabled, "version": out.Version}))
	})
	if err != nil {
		return nil, err
	}
	c.live.TaskConfigChanged(ctx, tc.ID)
	return out, nil
}

// DeleteTaskConfig stops the config's task and removes the config.
func (c *Core) DeleteTaskConfig(ctx context.Context, by Actor, st *models.Stream, tc *models.TaskConfig) error {
	if err := c.live.TaskConfigDeleting(ctx, tc.ID); err != nil {
		return err
	}
	return c.store.Tx(ctx, func(tx *models.Store) error {
		if err := tx.DeleteTaskConfig(ctx, st.ID, tc.ID); err != nil {
			return err
		}
		return tx.Audit(ctx, c.event(by, "task_config.delete", ConfigObject(st.ID, tc.ID), map[string]any{"type": tc.Type, "name": tc.Name}))
	})
}

// RestartTask restarts a task on its node with a new epoch. A task that is
// not meant to run now (stream offline, config disabled) is refused.
func (c *Core) RestartTask(ctx context.Context, by Actor, taskID int64) (*models.Task, error) {
	out, err := c.live.RestartTask(ctx, taskID, "restart requested by "+by.Name, func(tx *models.Store, out *models.Task) error {
		return tx.Audit(ctx, c.event(by, "task.restart", "task/"+strconv.FormatInt(taskID, 10), map[string]any{"epoch": out.Epoch}))
	})
	if errors.Is(err, models.ErrInUse) {
		return nil, &ConflictError{Message: "the task is not meant to run now (stream offline or config disabled), so it cannot be restarted"}
	}
	return out, err
}
