package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CompileConfig loads one task config (ErrNotFound when deleted).
func (s *Store) CompileConfig(ctx context.Context, id int64) (*TaskConfig, error) {
	var c TaskConfig
	if err := s.db(ctx).First(&c, id).Error; err != nil {
		return nil, notFound(err, "task config")
	}
	return &c, nil
}

// LiveCompileInputs loads, for the streams ids, their enabled task configs
// other than exceptType, by config id, and the streams that have any (with
// their application): what compiling the tasks of streams that went live
// needs, in at most two queries whatever the number of streams, and one
// when none of them has a config.
func (s *Store) LiveCompileInputs(ctx context.Context, ids []int64, exceptType string) (map[int64]*Stream, []TaskConfig, error) {
	var cfgs []TaskConfig
	if err := s.db(ctx).Where("stream_id IN ? AND enabled = ? AND type <> ?", ids, true, exceptType).Order("id").Find(&cfgs).Error; err != nil {
		return nil, nil, fmt.Errorf("task configs of %d streams: %w", len(ids), err)
	}
	if len(cfgs) == 0 {
		return nil, nil, nil
	}
	byID, err := s.streamsOf(ctx, cfgs)
	if err != nil {
		return nil, nil, err
	}
	return byID, cfgs, nil
}

// EnabledCompileInputs loads every enabled task config of an enabled
// stream, by config id, and those streams (with their application): the
// tasks there would be if every such stream were live.
func (s *Store) EnabledCompileInputs(ctx context.Context) (map[int64]*Stream, []TaskConfig, error) {
	var cfgs []TaskConfig
	enabled := s.db(ctx).Model(&Stream{}).Select("id").Where("enabled = ?", true)
	if err := s.db(ctx).Where("enabled = ? AND stream_id IN (?)", true, enabled).Order("id").Find(&cfgs).Error; err != nil {
		return nil, nil, fmt.Errorf("enabled task configs: %w", err)
	}
	if len(cfgs) == 0 {
		return nil, nil, nil
	}
	byID, err := s.streamsOf(ctx, cfgs)
	if err != nil {
		return nil, nil, err
	}
	return byID, cfgs, nil
}

// streamsOf loads the streams of cfgs with their applications, by id.
func (s *Store) streamsOf(ctx context.Context, cfgs []TaskConfig) (map[int64]*Stream, error) {
	withCfg := make([]int64, 0, len(cfgs))
	for _, c := range cfgs {
		withCfg = append(withCfg, c.StreamID)
	}
	slices.Sort(withCfg)
	var sts []Stream
	if err := s.db(ctx).Preload("Application").Where("id IN ?", slices.Compact(withCfg)).Find(&sts).Error; err != nil {
		return nil, fmt.Errorf("load %d streams: %w", len(withCfg), err)
	}
	byID := make(map[int64]*Stream, len(sts))
	for i := range sts {
		byID[sts[i].ID] = &sts[i]
	}
	return byID, nil
}

// LiveCompiler compiles the tasks of streams that just went live from
// their enabled task configs (pull configs excepted: they run whether the
// stream is live or not) and the streams with their applications. It is
// pure: it runs inside the transaction that marks the streams live.
type LiveCompiler func(streams map[int64]*Stream, cfgs []TaskConfig) []*Task

// SetLiveCompiler makes AddOrigin create, with fn, the tasks of a stream
// that goes live, in the transaction that marks it live. Without one (or
// after SetLiveCompiler(nil)), going live creates no tasks.
func (s *Store) SetLiveCompiler(fn LiveCompiler) {
	if fn == nil {
		s.live.Store(nil)
		return
	}
	s.live.Store(&fn)
}

// compileLiveTx creates, inside the caller's transaction, the tasks of the
// streams ids, which it has just marked live.
func (s *Store) compileLiveTx(ctx context.Context, ids []int64) error {
	if s.live == nil {
		return nil
	}
	fn := s.live.Load()
	if fn == nil {
		return nil
	}
	sts, cfgs, err := s.LiveCompileInputs(ctx, ids, TypePull)
	if err != nil || len(cfgs) == 0 {
		return err
	}
	_, err = s.createLiveTasksTx(ctx, (*fn)(sts, cfgs))
	return err
}

// createLiveTasksTx inserts, inside the caller's transaction, the tasks of
// streams that are live and whose config has no active task (desired state
// running), each config at most once; it returns the tasks it inserted. On
// Postgres the streams' rows are share-locked, so an offline transition
// waits for this transaction and then stops what it inserted.
func (s *Store) createLiveTasksTx(ctx context.Context, tasks []*Task) ([]*Task, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	var streamIDs, cfgIDs []int64
	for _, t := range tasks {
		streamIDs = append(streamIDs, t.StreamID)
		if t.ConfigID != nil {
			cfgIDs = append(cfgIDs, *t.ConfigID)
		}
	}
	slices.Sort(streamIDs)
	streamIDs = slices.Compact(streamIDs)
	q := "SELECT id FROM streams WHERE id IN ? AND live = ? ORDER BY id"
	if s.dialect == DialectPostgres {
		q += " FOR SHARE"
	}
	var liveIDs []int64
	if err := s.db(ctx).Raw(q, streamIDs, true).Scan(&liveIDs).Error; err != nil {
		return nil, fmt.Errorf("lock %d streams: %w", len(streamIDs), err)
	}
	var running []int64
	if len(cfgIDs) > 0 {
		if err := s.db(ctx).Model(&Task{}).Where("config_id IN ? AND desired_state = ?", cfgIDs, DesiredRunning).
			Pluck("config_id", &running).Error; err != nil {
			return nil, fmt.Errorf("active tasks of %d configs: %w", len(cfgIDs), err)
		}
	}
	active := make(map[int64]bool, len(running))
	for _, id := range running {
		active[id] = true
	}
	var out []*Task
	for _, t := range tasks {
		if _, live := slices.BinarySearch(liveIDs, t.StreamID); !live {
			continue
		}
		if t.ConfigID != nil {
			if active[*t.ConfigID] {
				continue
			}
			active[*t.ConfigID] = true // once per batch too
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := s.db(ctx).CreateInBatches(out, 200).Error; err != nil {
		return nil, fmt.Errorf("create %d tasks: %w", len(out), err)
	}
	return out, nil
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
	var n int64
	err := s.Tx(ctx, func(tx *Store) error {
		q := tx.db(ctx).Model(&Task{}).Where("stream_id = ? AND desired_state = ?", streamID, DesiredRunning)
		if len(exceptTypes) > 0 {
			q = q.Where("type NOT IN ?", exceptTypes)
		}
		var ids []int64
		q = q.Order("id")
		if tx.dialect == DialectPostgres {
			// Lock in ascending ids, as every locker of several task
			// rows does (a concierge's report batch, a drain), so that
			// they never deadlock.
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Pluck("id", &ids).Error; err != nil {
			return fmt.Errorf("tasks of stream %d: %w", streamID, err)
		}
		if len(ids) == 0 {
			return nil
		}
		res := tx.db(ctx).Model(&Task{}).Where("id IN ? AND desired_state = ?", ids, DesiredRunning).Updates(stopCols(reason))
		if res.Error != nil {
			return fmt.Errorf("stop tasks of stream %d: %w", streamID, res.Error)
		}
		n = res.RowsAffected
		return nil
	})
	return n, err
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
