package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// Applications, tasks, nodes and audit events.

func (s *Server) apiListApps(c *gin.Context) {
	apps, err := s.p.Store.ListApplications(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(apps, int64(len(apps)), paging.Page{Limit: len(apps)}, len(apps)))
}

func (s *Server) apiCreateApp(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	app, err := s.core.CreateApplication(c.Request.Context(), auth.Actor(c), req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, app)
}

func (s *Server) apiDeleteApp(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.core.DeleteApplication(c.Request.Context(), auth.Actor(c), id)
	if errors.Is(err, models.ErrNotFound) {
		err = httperr.NotFound("application")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// apiTaskView is a task as the API shows it. The argument list is left out: it
// holds target keys and publish keys.
type apiTaskView struct {
	ID           int64  `json:"id"`
	ConfigID     *int64 `json:"config_id"`
	StreamID     int64  `json:"stream_id"`
	Type         string `json:"type"`
	State        string `json:"state"`
	DesiredState string `json:"desired_state"`
	Node         string `json:"node"`
	Epoch        int64  `json:"epoch"`
	Restarts     int    `json:"restarts"`
	LastExitCode *int   `json:"last_exit_code"`
	LastError    string `json:"last_error"`
	LogTail      string `json:"log_tail"`
	// Progress is a running ffmpeg task's latest progress (absent otherwise).
	Progress      json.RawMessage `json:"progress,omitempty"`
	StartedAt     *time.Time      `json:"started_at"`
	LeaseUntil    *time.Time      `json:"lease_until"`
	Reason        string          `json:"reason"`
	Command       string          `json:"command"`
	Cost          float64         `json:"cost"` // CPU cores (taskcost.Cores)
	ConfigVersion int64           `json:"config_version"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

func apiViewTask(t *models.Task) apiTaskView {
	return apiTaskView{
		ID: t.ID, ConfigID: t.ConfigID, StreamID: t.StreamID, Type: t.Type, State: t.State, DesiredState: t.DesiredState,
		Node: t.NodeName, Epoch: t.Epoch, Restarts: t.Restarts, LastExitCode: t.LastExitCode, LastError: t.LastError,
		LogTail: t.LogTail, StartedAt: t.StartedAt, LeaseUntil: t.LeaseUntil, Reason: t.Reason,
		Command: t.Description.Command, Cost: taskcost.Cores(max(t.Description.Cost, 1)), ConfigVersion: t.ConfigVersion,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Progress: taskProgress(t),
	}
}

// taskProgress is t's stored progress, nil when it has none (or it is not
// running: a stopped task's last figures are history, not progress).
func taskProgress(t *models.Task) json.RawMessage {
	if t.Progress == "" || t.State != models.TaskRunning || !json.Valid([]byte(t.Progress)) {
		return nil
	}
	return json.RawMessage(t.Progress)
}

var taskStates = map[string]bool{
	models.TaskPending: true, models.TaskAssigned: true, models.TaskStarting: true, models.TaskRunning: true,
	models.TaskBackoff: true, models.TaskFailed: true, models.TaskStopping: true, models.TaskStopped: true,
}

func (s *Server) apiListTasks(c *gin.Context) {
	pg, err := paging.Params(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := models.TaskFilter{Limit: pg.Limit, Offset: pg.Offset, State: c.Query("state"), NodeName: c.Query("node")}
	if f.State != "" && !taskStates[f.State] {
		s.fail(c, httperr.Invalid("state", "state must be one of pending, assigned, starting, running, backoff, failed, stopping, stopped"))
		return
	}
	if v := c.Query("stream"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			s.fail(c, httperr.Invalid("stream", "stream must be a stream id"))
			return
		}
		f.StreamID = id
	}
	if v := c.Query("config"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			s.fail(c, httperr.Invalid("config", "config must be a task config id"))
			return
		}
		f.ConfigID = id
	}
	if v := c.Query("latest"); v != "" {
		latest, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(c, httperr.Invalid("latest", "latest must be true or false"))
			return
		}
		f.LatestPerConfig = latest
	}
	if p := auth.PrincipalOf(c); !p.SeesAllStreams() {
		f.OwnerID = p.User.ID
	}
	list, total, err := s.p.Store.ListTasks(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]apiTaskView, len(list))
	for i := range list {
		out[i] = apiViewTask(&list[i])
	}
	c.JSON(http.StatusOK, listOf(out, total, pg, len(out)))
}

// loadTask loads task :id, hiding other operators' tasks as 404.
func (s *Server) loadTask(c *gin.Context) (*models.Task, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	t, err := s.p.Store.TaskByID(c.Request.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, httperr.NotFound("task")
	}
	if err != nil {
		return nil, err
	}
	if p := auth.PrincipalOf(c); !p.SeesAllStreams() {
		st, err := s.p.Store.StreamByID(c.Request.Context(), t.StreamID)
		if err != nil || !p.Owns(st) {
			return nil, httperr.NotFound("task")
		}
	}
	return t, nil
}

func (s *Server) apiGetTask(c *gin.Context) {
	t, err := s.loadTask(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, apiViewTask(t))
}

func (s *Server) apiRestartTask(c *gin.Context) {
	t, err := s.loadTask(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.core.RestartTask(c.Request.Context(), auth.Actor(c), t.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, apiViewTask(out))
}

type apiNodeView struct {
	Name          string        `json:"name"`
	Role          string        `json:"role"`
	RTMPAddress   string        `json:"rtmp_address"`
	HTTPAddress   string        `json:"http_address"`
	Capacity      int           `json:"capacity"`
	Labels        models.Labels `json:"labels"`
	Load          apiNodeLoad   `json:"load"`
	Version       string        `json:"version"`
	LastHeartbeat *time.Time    `json:"last_heartbeat"`
	RegisteredAt  time.Time     `json:"registered_at"`
	Draining      bool          `json:"draining"`
	Alive         bool          `json:"alive"`
	State         string        `json:"state"`
}

// apiNodeLoad is a node's load as the API shows it: a concierge's cost
// used in CPU cores, as its capacity (the heartbeat carries taskcost
// units). The outer CostUsed hides the embedded one.
type apiNodeLoad struct {
	models.NodeLoad
	CostUsed float64 `json:"cost_used"`
}

func (s *Server) apiListNodes(c *gin.Context) {
	nodes, err := s.p.Store.ListNodes(c.Request.Context(), c.Query("role"))
	if err != nil {
		s.fail(c, err)
		return
	}
	now := time.Now()
	out := make([]apiNodeView, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		st := s.lv.NodeState(n, now)
		out[i] = apiNodeView{Name: n.Name, Role: n.Role, RTMPAddress: n.RTMPAddress, HTTPAddress: n.HTTPAddress,
			Capacity: n.Capacity, Labels: n.Labels, Load: apiNodeLoad{NodeLoad: n.Load, CostUsed: taskcost.Cores(n.Load.CostUsed)}, Version: n.Version, LastHeartbeat: n.LastHeartbeat,
			RegisteredAt: n.RegisteredAt, Draining: n.Draining, Alive: st != "dead", State: st}
	}
	c.JSON(http.StatusOK, listOf(out, int64(len(out)), paging.Page{Limit: len(out)}, len(out)))
}

func (s *Server) apiDrainNode(c *gin.Context) {
	ids, err := s.core.DrainNode(c.Request.Context(), auth.Actor(c), c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if ids == nil {
		ids = []int64{}
	}
	c.JSON(http.StatusOK, gin.H{"tasks": ids})
}

func (s *Server) apiResumeNode(c *gin.Context) {
	if err := s.core.ResumeNode(c.Request.Context(), auth.Actor(c), c.Param("name")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) apiRemoveNode(c *gin.Context) {
	if err := s.core.RemoveNode(c.Request.Context(), auth.Actor(c), c.Param("name")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// apiListAudit lists audit events: admins see every event, other users only
// their own actions.
func (s *Server) apiListAudit(c *gin.Context) {
	pg, err := paging.Params(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := models.AuditFilter{Action: c.Query("action"), Actor: c.Query("actor"), Object: c.Query("object"), Limit: pg.Limit, Offset: pg.Offset}
	for _, tf := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(tf.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.fail(c, httperr.Invalid(tf.name, tf.name+" must be an RFC 3339 time, like 2026-01-02T15:04:05Z"))
				return
			}
			*tf.t = t
		}
	}
	if p := auth.PrincipalOf(c); !p.IsAdmin() {
		if f.Actor != "" && f.Actor != p.User.Username {
			s.fail(c, httperr.Forbidden("only admins may read other users' audit events"))
			return
		}
		f.Actor = p.User.Username
	}
	list, total, err := s.p.Store.ListAudit(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(list, total, pg, len(list)))
}
