package nodeapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/models"
)

const (
	maxStatusBody = 64 << 10
	// maxBatchBody fits wire.MaxStatusBatch reports with log tails.
	maxBatchBody = 8 << 20
	maxLogTail   = 4096
	maxErrorText = 500

	// A long poll waits longPollWait unless the concierge asks for another
	// wait (at most maxLongPoll).
	longPollWait = 25 * time.Second
	maxLongPoll  = 60 * time.Second
)

// registerConciergeAPI registers the concierge endpoints under g
// (/internal/v1): see concierge/wire for their shapes.
func (s *Server) registerConciergeAPI(g *gin.RouterGroup) {
	c := g.Group("/concierge/:name", s.conciergeAuth)
	c.GET("/assignments", s.conciergeAssignments)
	c.POST("/tasks/:id/status", s.conciergeStatus)
	c.POST("/status", s.conciergeStatusBatch)
	c.POST("/drain", s.conciergeDrain)
	c.GET("/handoff", s.conciergeHandoff)
	c.POST("/recordings", s.conciergeRecordings)
}

func schedErr(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, nodewire.NewError(code, msg, ""))
}

// conciergeAuth accepts the cluster token only: assignments carry full task
// command lines with their keys, so no source address is trusted for them
// (not loopback, not a --hook-allow network).
func (s *Server) conciergeAuth(c *gin.Context) {
	if tok := s.p.ClusterToken; tok != "" {
		if h := c.GetHeader("Authorization"); strings.HasPrefix(h, "Bearer ") &&
			subtle.ConstantTimeCompare([]byte(strings.TrimPrefix(h, "Bearer ")), []byte(tok)) == 1 {
			c.Next()
			return
		}
	}
	schedErr(c, http.StatusUnauthorized, "unauthenticated", "concierge endpoints need the cluster token: send Authorization: Bearer TOKEN")
}

// knownConcierge answers 404 unknown_node (register again) for a name that
// is not a registered concierge.
func (s *Server) knownConcierge(c *gin.Context) (string, bool) {
	name := c.Param("name")
	n, err := s.p.Store.NodeByName(c.Request.Context(), name)
	if err != nil || n.Role != models.NodeRoleConcierge {
		if err != nil && !errors.Is(err, models.ErrNotFound) {
			schedErr(c, http.StatusInternalServerError, "internal", "node registry unavailable")
			return "", false
		}
		schedErr(c, http.StatusNotFound, wire.CodeUnknownNode, "no concierge named "+strconv.Quote(name)+" is registered: register first")
		return "", false
	}
	return name, true
}

func (s *Server) conciergeAssignments(c *gin.Context) {
	name, ok := s.knownConcierge(c)
	if !ok {
		return
	}
	wait := longPollWait
	if v := c.Query("wait_ms"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			schedErr(c, http.StatusBadRequest, "invalid", "wait_ms must be a non-negative integer")
			return
		}
		// Cap before converting: a huge wait_ms must not overflow into a negative wait.
		wait = min(time.Duration(min(ms, int(maxLongPoll/time.Millisecond)))*time.Millisecond, maxLongPoll)
	}
	// --http-read-timeout and --http-write-timeout may be shorter than the
	// wait: this response is late on purpose.
	if err := httpserve.LongPoll(c.Writer, wait); err != nil {
		s.log.Warn("long poll: cannot lift the connection's deadlines", "err", err)
	}
	a, err := s.sched.WaitAssignment(c.Request.Context(), name, c.Query("after"), wait)
	if err != nil {
		if c.Request.Context().Err() != nil {
			return // the concierge went away
		}
		s.log.Error("assignment", "node", name, "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot read assignments")
		return
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) conciergeStatus(c *gin.Context) {
	name, ok := s.knownConcierge(c)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		schedErr(c, http.StatusBadRequest, "invalid", "task id must be a positive integer")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxStatusBody))
	if err != nil {
		schedErr(c, http.StatusRequestEntityTooLarge, "body_too_large", "status report over 64 KiB")
		return
	}
	var r wire.StatusReport
	if err := json.Unmarshal(body, &r); err != nil {
		schedErr(c, http.StatusBadRequest, "malformed_json", "status report: "+err.Error())
		return
	}
	rep, bad := toStoreReport(r)
	if bad != "" {
		schedErr(c, http.StatusBadRequest, "invalid", bad)
		return
	}
	one := []models.TaskReport{{TaskID: id, StatusReport: rep}}
	if err := s.redactReports(c.Request.Context(), one); err != nil {
		s.log.Error("task status", "node", name, "task", id, "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot record the report")
		return
	}
	rep = one[0].StatusReport
	t, err := s.p.Store.ReportTaskStatus(c.Request.Context(), name, id, rep, s.sched.Now(), s.sched.Lease())
	switch {
	case errors.Is(err, models.ErrStaleEpoch):
		s.sched.StaleReport()
		schedErr(c, http.StatusConflict, wire.CodeStaleEpoch, err.Error()+": stop it")
		return
	case errors.Is(err, models.ErrNotFound):
		schedErr(c, http.StatusNotFound, wire.CodeUnknownTask, "no task "+strconv.FormatInt(id, 10)+": stop it")
		return
	case err != nil:
		s.log.Error("task status", "node", name, "task", id, "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot record the report")
		return
	}
	s.log.Info("task state", "task", id, "node", name, "epoch", r.Epoch, "state", t.State, "error", rep.Error)
	if t.State == models.TaskPending {
		s.sched.Kick()
	}
	c.JSON(http.StatusOK, wire.StatusAnswer{State: t.State})
}

// conciergeStatusBatch applies a concierge's batch of reports in one
// transaction and answers each one.
func (s *Server) conciergeStatusBatch(c *gin.Context) {
	name, ok := s.knownConcierge(c)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBatchBody))
	if err != nil {
		schedErr(c, http.StatusRequestEntityTooLarge, "body_too_large", "status batch over 8 MiB: send fewer reports at a time")
		return
	}
	var b wire.StatusBatch
	if err := json.Unmarshal(body, &b); err != nil {
		schedErr(c, http.StatusBadRequest, "malformed_json", "status batch: "+err.Error())
		return
	}
	if len(b.Reports) == 0 || len(b.Reports) > wire.MaxStatusBatch {
		schedErr(c, http.StatusBadRequest, "invalid", "reports: send 1 to "+strconv.Itoa(wire.MaxStatusBatch)+" reports")
		return
	}
	reps := make([]models.TaskReport, len(b.Reports))
	for i, r := range b.Reports {
		if r.TaskID <= 0 {
			schedErr(c, http.StatusBadRequest, "invalid", "reports["+strconv.Itoa(i)+"].task_id must be a positive integer")
			return
		}
		rep, bad := toStoreReport(r.StatusReport)
		if bad != "" {
			schedErr(c, http.StatusBadRequest, "invalid", "reports["+strconv.Itoa(i)+"]."+bad)
			return
		}
		reps[i] = models.TaskReport{TaskID: r.TaskID, StatusReport: rep}
	}
	if err := s.redactReports(c.Request.Context(), reps); err != nil {
		s.log.Error("task status batch", "node", name, "reports", len(reps), "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot record the reports")
		return
	}
	res, err := s.p.Store.ReportTaskStatuses(c.Request.Context(), name, reps, s.sched.Now(), s.sched.Lease())
	if err != nil {
		s.log.Error("task status batch", "node", name, "reports", len(reps), "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot record the reports")
		return
	}
	out := wire.StatusBatchAnswer{Results: make([]wire.StatusResult, len(res))}
	kick := false
	for i, r := range res {
		id := reps[i].TaskID
		out.Results[i].TaskID = id
		switch {
		case errors.Is(r.Err, models.ErrStaleEpoch):
			s.sched.StaleReport()
			out.Results[i].Error = &wire.Error{Code: wire.CodeStaleEpoch, Message: r.Err.Error() + ": stop it"}
		case errors.Is(r.Err, models.ErrNotFound):
			out.Results[i].Error = &wire.Error{Code: wire.CodeUnknownTask, Message: "no task " + strconv.FormatInt(id, 10) + ": stop it"}
		case r.Err != nil:
			out.Results[i].Error = &wire.Error{Code: "internal", Message: "cannot record the report"}
		default:
			out.Results[i].State = r.Task.State
			kick = kick || r.Task.State == models.TaskPending
			// A progress sample repeats the state: not worth an INFO line.
			lvl := slog.LevelInfo
			if r.Prev == r.Task.State {
				lvl = slog.LevelDebug
			}
			s.log.Log(c.Request.Context(), lvl, "task state", "task", id, "node", name, "epoch", reps[i].Epoch, "state", r.Task.State, "error", reps[i].Error)
		}
	}
	s.emitTaskEvents(c.Request.Context(), name, reps, res)
	if kick {
		s.sched.Kick()
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) conciergeDrain(c *gin.Context) {
	name := c.Param("name")
	ids, err := s.p.Store.DrainConcierge(c.Request.Context(), name, s.sched.Now(), nil)
	if errors.Is(err, models.ErrNotFound) {
		schedErr(c, http.StatusNotFound, wire.CodeUnknownNode, "no concierge named "+strconv.Quote(name))
		return
	}
	if err != nil {
		s.log.Error("drain", "node", name, "err", err)
		schedErr(c, http.StatusInternalServerError, "internal", "cannot drain")
		return
	}
	s.log.Info("concierge draining; tasks handed back", "node", name, "tasks", len(ids))
	s.sched.Kick()
	if ids == nil {
		ids = []int64{}
	}
	c.JSON(http.StatusOK, wire.DrainAnswer{Tasks: ids})
}

func (s *Server) conciergeHandoff(c *gin.Context) {
	name := c.Param("name")
	ids, err := parseIDs(c.Query("tasks"))
	if err != nil {
		schedErr(c, http.StatusBadRequest, "invalid", "tasks: "+err.Error())
		return
	}
	ts, err := s.p.Store.SchedTasksByID(c.Request.Context(), ids)
	if err != nil {
		schedErr(c, http.StatusInternalServerError, "internal", "cannot read tasks")
		return
	}
	waiting := []int64{}
	for _, t := range ts {
		elsewhere := t.NodeName != "" && t.NodeName != name && t.State == models.TaskRunning
		if t.DesiredState == models.DesiredRunning && !elsewhere {
			waiting = append(waiting, t.ID)
		}
	}
	c.JSON(http.StatusOK, wire.HandoffAnswer{Waiting: waiting})
}

// toStoreReport checks a concierge's report and converts it for the store;
// bad says what is wrong. Its error text and log tail are shortened by
// redactReports, after redaction: a cut through a key would leave a piece
// of it that no longer matches.
func toStoreReport(r wire.StatusReport) (rep models.StatusReport, bad string) {
	if !models.ConciergeReportable(r.State) {
		return rep, "state must be one of starting, running, backoff, failed, stopping, stopped"
	}
	rep = models.StatusReport{Epoch: r.Epoch, State: r.State, ExitCode: r.ExitCode, Error: r.Error, LogTail: r.LogTail}
	if r.Progress != nil && r.State == models.TaskRunning {
		rep.Progress, _ = json.Marshal(r.Progress) // numbers and a bool: cannot fail
	}
	return rep, ""
}

// truncateLog keeps the last max bytes of a log, from the start of a line:
// a line cut at its start may begin inside a key.
func truncateLog(s string, max int) string {
	if len(s) <= max {
		return strings.ToValidUTF8(s, "?")
	}
	s = truncateTail(s, max)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// truncateTail keeps the last max bytes of s, on a UTF-8 boundary.
func truncateTail(s string, max int) string {
	if len(s) <= max {
		return strings.ToValidUTF8(s, "?")
	}
	s = s[len(s)-max:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return strings.ToValidUTF8(s, "?")
}

// parseIDs parses "1,2,3" (at most 10,000 ids).
func parseIDs(s string) ([]int64, error) {
	var out []int64
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ',' {
			continue
		}
		if i > start {
			id, err := strconv.ParseInt(s[start:i], 10, 64)
			if err != nil || id <= 0 {
				return nil, fmt.Errorf("bad task id %q", s[start:i])
			}
			out = append(out, id)
			if len(out) > 10000 {
				return nil, fmt.Errorf("too many task ids")
			}
		}
		start = i + 1
	}
	return out, nil
}
