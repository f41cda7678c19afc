package models

import (
	"context"
	"fmt"
)

// TaskSecretSource is what the control plane holds of a task that may
// appear in its process's log: the compiled description, the publish key
// of its stream and its task config (restream targets and keys, pull
// sources). The control plane redacts these from reports before storing.
type TaskSecretSource struct {
	ID          int64
	Type        string
	Description TaskDescription
	StreamKey   string
	ConfigType  string
	ConfigSpec  RawJSON
}

// TaskSecretSources loads the secret sources of tasks by id (missing ids
// are left out).
func (s *Store) TaskSecretSources(ctx context.Context, ids []int64) (map[int64]TaskSecretSource, error) {
	out := map[int64]TaskSecretSource{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []TaskSecretSource
	err := s.db(ctx).Table("tasks").
		Select("tasks.id AS id, tasks.type AS type, tasks.description AS description, "+
			"COALESCE(streams.publish_key, '') AS stream_key, COALESCE(task_configs.type, '') AS config_type, task_configs.spec AS config_spec").
		Joins("LEFT JOIN streams ON streams.id = tasks.stream_id").
		Joins("LEFT JOIN task_configs ON task_configs.id = tasks.config_id").
		Where("tasks.id IN ?", ids).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("task secrets: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}
