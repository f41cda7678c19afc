package nodeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/recordings"
	"github.com/portier/portier/portier/webhook"
)

// maxRecordingsBody fits wire.MaxRecordings recordings.
const maxRecordingsBody = 1 << 20

// pruneRecordingsEvery: how often a replica forgets old claims of
// finished recordings.
const pruneRecordingsEvery = time.Hour

// conciergeRecordings takes the files a concierge's record tasks closed
// (wire.RecordingsReport) and announces each one once, across replicas and
// resent reports (models.Store.ClaimFinishedRecording): webhook
// recording.finished. A recording of no record task is answered
// unknown_task; a store failure answers 500 and the concierge sends the
// report again (what was claimed before the failure is then a duplicate).
func (s *Server) conciergeRecordings(c *gin.Context) {
	name, ok := s.knownConcierge(c)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxRecordingsBody))
	if err != nil {
		schedErr(c, http.StatusRequestEntityTooLarge, "body_too_large", "recordings report over 1 MiB: send fewer recordings at a time")
		return
	}
	var rep wire.RecordingsReport
	if err := json.Unmarshal(body, &rep); err != nil {
		schedErr(c, http.StatusBadRequest, "malformed_json", "recordings report: "+err.Error())
		return
	}
	if len(rep.Recordings) == 0 || len(rep.Recordings) > wire.MaxRecordings {
		schedErr(c, http.StatusBadRequest, "invalid", "recordings: send 1 to "+strconv.Itoa(wire.MaxRecordings)+" recordings")
		return
	}
	for i, r := range rep.Recordings {
		if bad := checkRecording(r); bad != "" {
			schedErr(c, http.StatusBadRequest, "invalid", "recordings["+strconv.Itoa(i)+"]."+bad)
			return
		}
	}
	ctx := c.Request.Context()
	now := s.sched.Now()
	s.pruneRecordings(ctx, now)
	out := wire.RecordingsAnswer{Results: make([]wire.RecordingResult, len(rep.Recordings))}
	tasks := map[int64]*models.Task{}
	streams := map[int64]*models.Stream{}
	for i, r := range rep.Recordings {
		out.Results[i].File = r.File
		t, st, err := s.recordingTask(ctx, r.TaskID, tasks, streams)
		if errors.Is(err, models.ErrNotFound) {
			out.Results[i].Error = &wire.Error{Code: wire.CodeUnknownTask, Message: "no record task " + strconv.FormatInt(r.TaskID, 10) + " (or its stream was deleted)"}
			continue
		}
		if err != nil {
			s.log.Error("recordings report", "node", name, "task", r.TaskID, "err", err)
			schedErr(c, http.StatusInternalServerError, "internal", "cannot record the recordings")
			return
		}
		first, err := s.p.Store.ClaimFinishedRecording(ctx, st.ID, r.File, t.ID, r.Size, now)
		if err != nil {
			s.log.Error("recordings report", "node", name, "task", r.TaskID, "file", r.File, "err", err)
			schedErr(c, http.StatusInternalServerError, "internal", "cannot record the recordings")
			return
		}
		if !first {
			out.Results[i].Duplicate = true
			continue
		}
		s.log.Info("recording finished", "stream", st.ID, "task", t.ID, "node", name, "file", r.File, "size", r.Size, "duration", r.DurationSeconds)
		s.emitRecording(ctx, name, t, st, r)
	}
	c.JSON(http.StatusOK, out)
}

// checkRecording says what is wrong with a reported recording ("" if nothing).
func checkRecording(r wire.Recording) string {
	switch {
	case r.TaskID <= 0:
		return "task_id must be a positive integer"
	case r.Size < 0:
		return "size must not be negative"
	case math.IsNaN(r.DurationSeconds) || math.IsInf(r.DurationSeconds, 0) || r.DurationSeconds < 0:
		return "duration_seconds must be a non-negative number"
	}
	if _, err := recordings.Path("/", r.File); err != nil {
		return "file: " + err.Error() + " (a plain .ts, .mp4 or .flv file name)"
	}
	return ""
}

// recordingTask loads record task id and its stream (through the report's
// caches): models.ErrNotFound when either is gone or the task records nothing.
func (s *Server) recordingTask(ctx context.Context, id int64, tasks map[int64]*models.Task, streams map[int64]*models.Stream) (*models.Task, *models.Stream, error) {
	t, ok := tasks[id]
	if !ok {
		var err error
		if t, err = s.p.Store.TaskByID(ctx, id); err != nil {
			return nil, nil, err
		}
		tasks[id] = t
	}
	if t.Type != models.TypeRecord {
		return nil, nil, models.ErrNotFound
	}
	st, ok := streams[t.StreamID]
	if !ok {
		var err error
		if st, err = s.p.Store.StreamByID(ctx, t.StreamID); err != nil {
			return nil, nil, err
		}
		streams[t.StreamID] = st
	}
	return t, st, nil
}

// emitRecording announces recording r of task t (recording.finished).
func (s *Server) emitRecording(ctx context.Context, node string, t *models.Task, st *models.Stream, r wire.Recording) {
	if s.p.Webhooks == nil {
		return
	}
	d := webhook.RecordingData{StreamID: st.ID, App: st.Application.Name, Name: st.Name, TaskID: t.ID, Node: node,
		File: r.File, Format: strings.TrimPrefix(filepath.Ext(r.File), "."), Size: r.Size, StartTime: r.StartTime.UTC(),
		DurationSeconds: math.Round(r.DurationSeconds*1000) / 1000,
		DownloadURL:     strings.TrimRight(s.p.PublicURL, "/") + "/api/v1/streams/" + strconv.FormatInt(st.ID, 10) + "/recordings/" + url.PathEscape(r.File)}
	if t.ConfigID != nil {
		d.TaskConfigID = *t.ConfigID
	}
	_ = s.p.Webhooks.Emit(context.WithoutCancel(ctx), webhook.Event{Type: webhook.RecordingFinished, Application: d.App, Data: d})
}

// pruneRecordings forgets claims older than models.FinishedRecordingsKeep,
// at most once per pruneRecordingsEvery on this replica.
func (s *Server) pruneRecordings(ctx context.Context, now time.Time) {
	last := s.recPruned.Load()
	if now.UnixNano()-last < int64(pruneRecordingsEvery) || !s.recPruned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if n, err := s.p.Store.PruneFinishedRecordings(ctx, now.Add(-models.FinishedRecordingsKeep)); err != nil {
		s.log.Warn("prune finished recordings", "err", err)
	} else if n > 0 {
		s.log.Debug("finished recordings pruned", "rows", n)
	}
}
