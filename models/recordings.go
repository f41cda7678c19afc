package models

import (
	"context"
	"fmt"
	"time"
)

// FinishedRecordingsKeep is how long a finished recording's claim is kept:
// long past any resend of a concierge's report.
const FinishedRecordingsKeep = 30 * 24 * time.Hour

// ClaimFinishedRecording records that the record task taskID closed file
// (a file name in stream streamID's recording directory) and reports
// whether this call is the first to say so: the caller then announces it
// (webhook recording.finished). One INSERT that does nothing on a
// conflict, so each file is claimed once across control-plane replicas
// and resent reports.
func (s *Store) ClaimFinishedRecording(ctx context.Context, streamID int64, file string, taskID, size int64, now time.Time) (bool, error) {
	res := s.db(ctx).Exec(`INSERT INTO finished_recordings (stream_id, file, task_id, size, finished_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (stream_id, file) DO NOTHING`, streamID, file, taskID, size, now.UTC())
	if res.Error != nil {
		return false, fmt.Errorf("claim finished recording %s of stream %d: %w", file, streamID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// PruneFinishedRecordings forgets the claims made before before; it
// returns how many.
func (s *Store) PruneFinishedRecordings(ctx context.Context, before time.Time) (int64, error) {
	res := s.db(ctx).Exec(`DELETE FROM finished_recordings WHERE finished_at < ?`, before.UTC())
	if res.Error != nil {
		return 0, fmt.Errorf("prune finished recordings: %w", res.Error)
	}
	return res.RowsAffected, nil
}
