package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/history"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/web/views"
)

// taskRows lists tasks the principal may see with their stream and config
// names (looked up once per distinct stream and config).
func (s *Server) taskRows(c *gin.Context, f models.TaskFilter) ([]views.TaskRow, error) {
	p := auth.PrincipalOf(c)
	if !p.SeesAllStreams() {
		f.OwnerID = p.User.ID
	}
	list, _, err := s.p.Store.ListTasks(rctx(c), f)
	if err != nil {
		return nil, err
	}
	var runs map[int64]int
	if f.LatestPerConfig {
		ids := make([]int64, 0, len(list))
		for i := range list {
			if list[i].ConfigID != nil {
				ids = append(ids, *list[i].ConfigID)
			}
		}
		if runs, err = s.p.Store.TaskRuns(rctx(c), ids); err != nil {
			return nil, err
		}
	}
	streams := map[int64]string{}
	configs := map[int64]string{}
	rows := make([]views.TaskRow, len(list))
	for i := range list {
		t := &list[i]
		name, ok := streams[t.StreamID]
		if !ok {
			if st, err := s.p.Store.StreamByID(rctx(c), t.StreamID); err == nil {
				name = st.Application.Name + "/" + st.Name
			}
			streams[t.StreamID] = name
		}
		cfg := ""
		if t.ConfigID != nil {
			if cfg, ok = configs[*t.ConfigID]; !ok {
				if tc, err := s.p.Store.CompileConfig(rctx(c), *t.ConfigID); err == nil {
					cfg = tc.Name
				}
				configs[*t.ConfigID] = cfg
			}
		}
		rows[i] = taskRow(t, name, cfg, p.CanWrite())
		if t.ConfigID != nil {
			rows[i].Runs = runs[*t.ConfigID]
		}
	}
	return rows, nil
}

func taskRow(t *models.Task, stream, config string, canWrite bool) views.TaskRow {
	r := views.TaskRow{
		ID: t.ID, StreamID: t.StreamID, StreamName: stream, Type: t.Type, ConfigName: config,
		State: t.State, Desired: t.DesiredState, Node: t.NodeName, Restarts: t.Restarts,
		LastError: t.LastError, Reason: t.Reason, Updated: formatTime(&t.UpdatedAt),
		CanRestart: canWrite && t.DesiredState == models.DesiredRunning,
	}
	if t.LastExitCode != nil {
		r.ExitCode = strconv.Itoa(*t.LastExitCode)
	}
	r.Progress, r.Stalled = progressText(t)
	return r
}

// taskProgress is the part of concierge/wire.Progress the UI shows.
type taskProgress struct {
	FPS        float64 `json:"fps"`
	Bitrate    int64   `json:"bitrate"`
	Speed      float64 `json:"speed"`
	DropFrames int64   `json:"drop_frames"`
	UptimeMS   int64   `json:"uptime_ms"`
	Stalled    bool    `json:"stalled"`
}

// progressText is a running task's progress in a line: frame rate, output
// bitrate, speed (1.00× keeps up with a live stream), dropped frames and
// how long its ffmpeg has run.
func progressText(t *models.Task) (string, bool) {
	var p taskProgress
	if t.State != models.TaskRunning || t.Progress == "" || json.Unmarshal([]byte(t.Progress), &p) != nil {
		return "", false
	}
	parts := []string{}
	if p.FPS > 0 {
		parts = append(parts, fmt.Sprintf("%.0f fps", p.FPS))
	}
	if p.Bitrate > 0 {
		parts = append(parts, formatBitrate(p.Bitrate))
	}
	parts = append(parts, fmt.Sprintf("%.2f×", p.Speed))
	if p.DropFrames > 0 {
		parts = append(parts, fmt.Sprintf("−%d", p.DropFrames))
	}
	if p.UptimeMS > 0 {
		parts = append(parts, formatDuration(time.Duration(p.UptimeMS)*time.Millisecond))
	}
	return strings.Join(parts, " · "), p.Stalled
}

func (s *Server) uiTasks(c *gin.Context) {
	state := c.Query("state")
	rows, err := s.taskRows(c, models.TaskFilter{State: state, LatestPerConfig: true, Limit: uiListLimit})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.TasksView(s.page(c, "Tasks", "tasks"), views.Tasks{Rows: rows, State: state}))
}

func (s *Server) uiTasksTable(c *gin.Context) {
	rows, err := s.taskRows(c, models.TaskFilter{State: c.Query("state"), LatestPerConfig: true, Limit: uiListLimit})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.TasksTable(s.page(c, "", "tasks"), rows, "all-tasks", "/tasks/table?state="+c.Query("state")))
}

func (s *Server) uiTask(c *gin.Context) {
	t, err := s.uiLoadTask(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	// The task's own row (with its stream and config names) and its
	// config's run history, newest first.
	f := models.TaskFilter{StreamID: t.StreamID, Limit: uiListLimit}
	if t.ConfigID != nil {
		f.ConfigID = *t.ConfigID
	}
	rows, err := s.taskRows(c, f)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	d := views.TaskDetail{LogTail: t.LogTail, Command: redactCommand(t.Description), Started: formatTime(t.StartedAt),
		Cost: taskcost.Format(max(t.Cost, 1))}
	d.Row = taskRow(t, "", "", auth.PrincipalOf(c).CanWrite())
	for _, r := range rows {
		if r.ID == t.ID {
			d.Row = r
		}
	}
	if t.ConfigID != nil && len(rows) > 1 {
		d.Runs = rows
	}
	s.render(c, http.StatusOK, views.TaskDetailView(s.page(c, fmt.Sprintf("Task #%d", t.ID), "tasks"), d))
}

// redactCommand shows a task's command line without the secrets it carries
// (stream keys in URLs): only the scheme, host and path of URL arguments.
func redactCommand(d models.TaskDescription) string {
	out := d.Command
	for _, a := range d.Args {
		out += " " + redactArg(a)
	}
	return out
}

func (s *Server) uiRestartTask(c *gin.Context) {
	if !auth.PrincipalOf(c).CanWrite() {
		s.uiError(c, http.StatusForbidden, errors.New("viewers have read-only access"))
		return
	}
	t, err := s.uiLoadTask(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	_, err = s.core.RestartTask(rctx(c), auth.Actor(c), t.ID)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, fmt.Sprintf("/tasks/%d?done=task-restarted", t.ID))
}

// nodeRow builds a node's view; origins also list the streams they hold.
func (s *Server) nodeRow(c *gin.Context, n *models.Node, now time.Time) views.NodeRow {
	state := s.lv.NodeState(n, now)
	r := views.NodeRow{
		Name: n.Name, Role: n.Role, Alive: state != "dead", Draining: n.Draining,
		LastHeartbeat: formatTime(n.LastHeartbeat), Address: n.HTTPAddress,
		Connections: n.Load.Connections, Streams: n.Load.Streams,
		BitrateIn: formatBitrate(n.Load.BitrateIn), BitrateOut: formatBitrate(n.Load.BitrateOut), Version: n.Version,
	}
	if n.RTMPAddress != "" {
		r.Address = n.RTMPAddress
		if n.HTTPAddress != "" {
			r.Address += " · " + n.HTTPAddress
		}
	}
	if n.Role == models.NodeRoleConcierge && n.Capacity > 0 {
		r.Cores, r.CostUsed, r.Capacity = true, taskcost.Format(n.Load.CostUsed), n.Capacity
		r.LoadPercent = min(100, n.Load.CostUsed*100/taskcost.FromCores(n.Capacity))
	}
	if h := n.Load.Host; h != nil && r.Alive {
		r.CPU = fmt.Sprintf("%.0f %% × %d", h.CPUPercent, h.CPUs)
		if h.MemoryTotalBytes > 0 {
			r.Memory = fmt.Sprintf("%.1f / %.1f GiB", float64(h.MemoryUsedBytes)/(1<<30), float64(h.MemoryTotalBytes)/(1<<30))
		}
		r.Uptime = formatDuration(time.Duration(h.UptimeSeconds) * time.Second)
		if h.Version != "" {
			r.Version = h.Version
		}
	}
	if auth.PrincipalOf(c).IsAdmin() {
		r.CanDrain = n.Role == models.NodeRoleConcierge && r.Alive && !n.Draining
		r.CanResume = n.Role == models.NodeRoleConcierge && n.Draining
		r.CanRemove = !r.Alive
	}
	if n.Role == models.NodeRoleOrigin {
		held, err := s.p.Store.NodeOrigins(rctx(c), n.Name)
		if err != nil {
			s.log.Error("ui: node origins", "node", n.Name, "err", err)
		}
		for _, h := range held {
			r.Held = append(r.Held, h.App+"/"+h.Name)
		}
	}
	if n.Role == models.NodeRoleEdge {
		// Players per stream on this edge, from its last heartbeat (the
		// reaper removes them once the edge leaves the alive window, nodewire.AliveHeartbeats heartbeats).
		list, err := s.p.Store.NodeStreamStats(rctx(c), n.Name, time.Time{})
		if err != nil {
			s.log.Error("ui: edge streams", "node", n.Name, "err", err)
		}
		l := s.lang(c)
		for _, st := range list {
			r.Held = append(r.Held, st.App+"/"+st.Name+" "+l.T("%d players", st.Players))
		}
	}
	return r
}

var roleOrder = map[string]int{
	models.NodeRoleOrigin: 0, models.NodeRoleEdge: 1, models.NodeRoleConcierge: 2,
	models.NodeRoleHLSOrigin: 3, models.NodeRoleCDNEdge: 4,
}

func (s *Server) uiCluster(c *gin.Context) {
	nodes, err := s.p.Store.ListNodes(rctx(c), "")
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	now := time.Now()
	groups := map[string]*views.NodeGroup{}
	var vm views.Cluster
	for i := range nodes {
		g := groups[nodes[i].Role]
		if g == nil {
			g = &views.NodeGroup{Role: nodes[i].Role}
			groups[nodes[i].Role] = g
		}
		g.Nodes = append(g.Nodes, s.nodeRow(c, &nodes[i], now))
	}
	for _, g := range groups {
		vm.Groups = append(vm.Groups, *g)
	}
	sort.Slice(vm.Groups, func(i, j int) bool {
		oi, ok1 := roleOrder[vm.Groups[i].Role]
		oj, ok2 := roleOrder[vm.Groups[j].Role]
		if ok1 != ok2 {
			return ok1
		}
		if oi != oj {
			return oi < oj
		}
		return vm.Groups[i].Role < vm.Groups[j].Role
	})
	vm.CDN = cdnView(nodes, func(n *models.Node) string { return s.lv.NodeState(n, now) })
	if vm.CDN != nil {
		for _, v := range s.hlsViewers() {
			vm.CDN.Viewers = append(vm.CDN.Viewers, views.HLSViewers{Stream: v.App + "/" + v.Name, Viewers: v.Viewers})
		}
	}
	s.render(c, http.StatusOK, views.ClusterView(s.page(c, "Cluster", "cluster"), vm))
}

// uiNodeAction runs an admin's action on node :name and goes back to the
// cluster page.
func (s *Server) uiNodeAction(c *gin.Context) {
	name, by := c.Param("name"), auth.Actor(c)
	var err error
	done := ""
	switch c.Param("action") {
	case "drain":
		_, err = s.core.DrainNode(rctx(c), by, name)
		done = "node-drained"
	case "resume":
		err = s.core.ResumeNode(rctx(c), by, name)
		done = "node-resumed"
	case "remove":
		err = s.core.RemoveNode(rctx(c), by, name)
		done = "node-removed"
	default:
		err = httperr.NotFound("action")
	}
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/cluster?done="+done)
}

// attentionStates are task states an operator should look at.
var attentionStates = []string{models.TaskFailed, models.TaskBackoff, models.TaskPending}

func (s *Server) dashboard(c *gin.Context) (views.Dashboard, error) {
	var d views.Dashboard
	live := true
	rows, _, err := s.streamRows(c, models.StreamFilter{Live: &live, Limit: uiListLimit})
	if err != nil {
		return d, err
	}
	d.Live = rows
	d.Totals.Live = len(rows)
	if s.p.History != nil {
		for i := range d.Live {
			pts := s.p.History.Stream(d.Live[i].ID)
			if len(pts) == 0 {
				continue
			}
			d.Live[i].BitrateGraph = sparkOf(pts, "Bitrate", func(p history.Point) int64 { return p.BitrateIn }, formatRate)
			d.Live[i].ViewersGraph = sparkOf(pts, "Viewers", func(p history.Point) int64 { return int64(p.Viewers) }, formatCount)
		}
	}
	if err := s.dashboardTotals(c, &d.Totals); err != nil {
		return d, err
	}
	if _, d.StreamsAll, err = s.streamRows(c, models.StreamFilter{Limit: 1}); err != nil {
		return d, err
	}
	for _, st := range attentionStates {
		tr, err := s.taskRows(c, models.TaskFilter{State: st, LatestPerConfig: true, Limit: 20})
		if err != nil {
			return d, err
		}
		for _, t := range tr {
			// A pending task only needs attention while it should run: it
			// waits for a node with capacity.
			if t.State == models.TaskPending && t.Desired != models.DesiredRunning {
				continue
			}
			d.Attention = append(d.Attention, t)
		}
	}
	nodes, err := s.p.Store.ListNodes(rctx(c), "")
	if err != nil {
		return d, err
	}
	d.NodesAll = len(nodes)
	now := time.Now()
	for i := range nodes {
		if s.lv.NodeState(&nodes[i], now) == "dead" {
			d.Silent = append(d.Silent, s.nodeRow(c, &nodes[i], now))
		}
	}
	return d, nil
}

// dashboardTotals fills the cluster's figures: ingest, egress and viewers
// with their last hour (from History; the latest sample alone without it),
// and the tasks by state.
func (s *Server) dashboardTotals(c *gin.Context, t *views.DashboardTotals) error {
	var pts []history.Point
	if s.p.History != nil {
		pts = s.p.History.Totals()
	}
	if len(pts) == 0 {
		pts = []history.Point{{}}
	}
	t.Ingest = *sparkOf(pts, "Ingest", func(p history.Point) int64 { return p.BitrateIn }, formatRate)
	t.Egress = *sparkOf(pts, "Egress", func(p history.Point) int64 { return p.BitrateOut }, formatRate)
	t.Viewers = *sparkOf(pts, "Viewers", func(p history.Point) int64 { return int64(p.Viewers) }, formatCount)
	counts, err := s.p.Store.TaskStateCounts(rctx(c))
	if err != nil {
		return err
	}
	byState := map[string]int64{}
	for _, n := range counts {
		byState[n.State] += n.N
	}
	for _, st := range []string{models.TaskRunning, models.TaskStarting, models.TaskAssigned, models.TaskPending,
		models.TaskBackoff, models.TaskFailed, models.TaskStopping} {
		if byState[st] > 0 {
			t.Tasks = append(t.Tasks, views.StateCount{State: st, Count: byState[st]})
		}
	}
	return nil
}

// sparkOf is the graph of one figure of pts, labelled with the latest
// value.
func sparkOf(pts []history.Point, label string, v func(history.Point) int64, format func(int64) string) *views.Spark {
	g := &views.Spark{Label: label, Values: make([]float64, len(pts))}
	for i, p := range pts {
		g.Values[i] = float64(v(p))
	}
	g.Latest = format(v(pts[len(pts)-1]))
	return g
}

func formatCount(n int64) string { return strconv.FormatInt(n, 10) }

// formatRate is formatBitrate that shows an idle cluster as 0.
func formatRate(bps int64) string {
	if bps <= 0 {
		return "0 kbit/s"
	}
	return formatBitrate(bps)
}

func (s *Server) uiDashboard(c *gin.Context) {
	d, err := s.dashboard(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.DashboardView(s.page(c, "Dashboard", "dashboard"), d))
}

func (s *Server) uiDashboardPanel(c *gin.Context) {
	d, err := s.dashboard(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.DashboardPanel(s.page(c, "Dashboard", "dashboard"), d))
}

// redactArg shortens URL arguments to scheme://host/first-segment/…: the
// rest of a publish URL (a stream key in the path or the query) and any
// credentials stay hidden.
func redactArg(a string) string {
	u, err := url.Parse(a)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return a
	}
	out := u.Scheme + "://" + u.Host
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(segs) > 0 && segs[0] != "" {
		out += "/" + segs[0]
	}
	if len(segs) > 1 || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

// uiLoadTask loads task :id with the API's visibility rule (operators see
// the tasks of their own streams): another operator's task is a 403 page.
func (s *Server) uiLoadTask(c *gin.Context) (*models.Task, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, httperr.NotFound("task")
	}
	t, err := s.p.Store.TaskByID(rctx(c), id)
	if err != nil {
		return nil, err
	}
	if p := auth.PrincipalOf(c); !p.SeesAllStreams() {
		st, err := s.p.Store.StreamByID(rctx(c), t.StreamID)
		if err != nil {
			return nil, err
		}
		if !p.Owns(st) {
			return nil, httperr.Forbidden("this task belongs to another operator's stream")
		}
	}
	return t, nil
}
