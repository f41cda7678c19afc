package portier

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestUITaskRunHistory: a config that went live three times is one row in
// the task lists (its newest run, "3 runs"), and the task page shows its
// run history with the earlier, failed run.
func TestUITaskRunHistory(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "onair")
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "archive", Enabled: true, Spec: models.RawJSON(`{}`)}
	if err := e.store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, state := range []string{models.TaskFailed, models.TaskStopped, models.TaskRunning} {
		task := &models.Task{ConfigID: &cfg.ID, StreamID: st.ID, Type: models.TypeRecord, DesiredState: models.DesiredStopped,
			State: state, LastError: "run " + state, Description: models.TaskDescription{Command: "ffmpeg"}}
		if state == models.TaskRunning {
			task.DesiredState = models.DesiredRunning
		}
		if err := e.store.DB.Create(task).Error; err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	newest := uiID(ids[2])

	op := e.login("op1")
	for _, page := range []string{"/tasks", "/streams/" + uiID(st.ID)} {
		_, doc := op.get(page, http.StatusOK)
		rows := doc.Find(`tr[data-task]`)
		if rows.Length() != 1 {
			t.Fatalf("%s lists %d task rows; want 1 per config", page, rows.Length())
		}
		if id, _ := rows.Attr("data-task"); id != newest || !strings.Contains(rows.Find(".runs").Text(), "3 runs") {
			t.Errorf("%s row: task %s, %q; want %s with 3 runs", page, id, rows.Text(), newest)
		}
	}
	// The newest run is not failing: the dashboard needs no attention.
	if _, doc := op.get("/", http.StatusOK); strings.Contains(doc.Find("#attention").Parent().Text(), "run failed") {
		t.Error("an earlier failed run shows as needing attention")
	}
	_, doc := op.get("/tasks/"+newest, http.StatusOK)
	runs := doc.Find("#runs tr[data-run]")
	if runs.Length() != 3 {
		t.Fatalf("run history has %d rows; want 3", runs.Length())
	}
	if s, _ := runs.Last().Attr("data-state"); s != models.TaskFailed || !strings.Contains(runs.Last().Text(), "run failed") {
		t.Errorf("oldest run: state %q, %q", s, runs.Last().Text())
	}
	if href, _ := runs.Last().Find("a").Attr("href"); href != "/tasks/"+uiID(ids[0]) {
		t.Errorf("oldest run links to %q", href)
	}
	// In German.
	if res, _ := op.submit("/account/language", url.Values{"language": {"de"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("language: %d", res.StatusCode)
	}
	_, doc = op.get("/tasks", http.StatusOK)
	if got := doc.Find(`tr[data-task] .runs`).Text(); !strings.Contains(got, "3 Läufe") {
		t.Errorf("German runs link: %q", got)
	}
}

// TestAPITaskRunHistory: GET /tasks?latest=true is one task per config;
// ?config=ID is that config's runs.
func TestAPITaskRunHistory(t *testing.T) {
	e := newAPIEnv(t, modelstest.SQLite(t))
	ctx := context.Background()
	st, err := e.store.CreateStream(ctx, "live", "cam", e.users["op1"].ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "archive", Enabled: true, Spec: models.RawJSON(`{}`)}
	if err := e.store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		task := &models.Task{ConfigID: &cfg.ID, StreamID: st.ID, Type: models.TypeRecord, DesiredState: models.DesiredStopped,
			State: models.TaskStopped, Description: models.TaskDescription{Command: "ffmpeg"}}
		if err := e.store.DB.Create(task).Error; err != nil {
			t.Fatal(err)
		}
	}
	if out := e.mustDo("op1", "GET", "/tasks?latest=true", "", http.StatusOK); out["total"] != 1.0 {
		t.Errorf("latest=true: total %v; want 1", out["total"])
	}
	if out := e.mustDo("op1", "GET", "/tasks?config="+uiID(cfg.ID), "", http.StatusOK); out["total"] != 3.0 {
		t.Errorf("config=%d: total %v; want 3", cfg.ID, out["total"])
	}
	if out := e.mustDo("op2", "GET", "/tasks?config="+uiID(cfg.ID), "", http.StatusOK); out["total"] != 0.0 {
		t.Errorf("another operator sees %v of op1's runs", out["total"])
	}
	for _, q := range []string{"latest=maybe", "config=x", "config=-1"} {
		if code, out := e.do("op1", "GET", "/tasks?"+q, ""); code != http.StatusBadRequest {
			t.Errorf("?%s: %d %v; want 400", q, code, out)
		}
	}
}
