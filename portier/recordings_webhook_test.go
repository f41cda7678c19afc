package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestConciergeRecordingsReport: the node API's recordings report checks
// its input (a 400 that names the field), answers unknown_task for a task
// that records nothing, and claims each file once: the same report sent
// again answers duplicate.
func TestConciergeRecordingsReport(t *testing.T) {
	st := modelstest.SQLite(t)
	e := newSchedEnv(t, st, time.Second)
	e.node(t, "c1", 4)
	ctx := context.Background()
	rec, _, err := st.CreateCompiledTask(ctx, &models.Task{StreamID: e.stream, Type: models.TypeRecord, DesiredState: models.DesiredRunning,
		State: models.TaskPending, Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "x", "out.ts"}, Cost: 1}})
	if err != nil {
		t.Fatal(err)
	}
	restream := e.task(t, 1)
	path := fmt.Sprintf(wire.PathRecordings, "c1")
	good := wire.Recording{TaskID: rec.ID, Epoch: 1, File: "20261203-140000.ts", Size: 1000, StartTime: time.Now(), DurationSeconds: 2}

	for _, tc := range []struct {
		name string
		body any
		want string
	}{
		{"empty", wire.RecordingsReport{}, "recordings: send 1 to 500"},
		{"path", wire.RecordingsReport{Recordings: []wire.Recording{{TaskID: rec.ID, File: "../etc/passwd.ts"}}}, "recordings[0].file"},
		{"ext", wire.RecordingsReport{Recordings: []wire.Recording{{TaskID: rec.ID, File: "x.csv"}}}, "recordings[0].file"},
		{"size", wire.RecordingsReport{Recordings: []wire.Recording{{TaskID: rec.ID, File: "a.ts", Size: -1}}}, "recordings[0].size"},
		{"task", wire.RecordingsReport{Recordings: []wire.Recording{good, {File: "a.ts"}}}, "recordings[1].task_id"},
		{"json", "not json", "malformed_json"},
	} {
		code, b := e.do(t, "POST", path, tc.body)
		if code != 400 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %s; want 400 naming %q", tc.name, code, b, tc.want)
		}
	}
	if code, b := e.do(t, "POST", fmt.Sprintf(wire.PathRecordings, "nobody"), wire.RecordingsReport{Recordings: []wire.Recording{good}}); code != 404 {
		t.Errorf("unknown concierge: %d %s, want 404", code, b)
	}

	report := wire.RecordingsReport{Recordings: []wire.Recording{good, {TaskID: restream, File: "b.ts", Size: 1}, {TaskID: 999999, File: "c.ts"}}}
	answer := func() wire.RecordingsAnswer {
		code, b := e.do(t, "POST", path, report)
		if code != 200 {
			t.Fatalf("report: %d %s", code, b)
		}
		var a wire.RecordingsAnswer
		if err := json.Unmarshal(b, &a); err != nil || len(a.Results) != 3 {
			t.Fatalf("answer %s (%v): want 3 results", b, err)
		}
		return a
	}
	a := answer()
	if a.Results[0].Error != nil || a.Results[0].Duplicate || a.Results[0].File != good.File {
		t.Errorf("first report of a record task's file: %+v, want it announced", a.Results[0])
	}
	for i := 1; i < 3; i++ {
		if a.Results[i].Error == nil || a.Results[i].Error.Code != wire.CodeUnknownTask {
			t.Errorf("result %d: %+v, want unknown_task (not a record task)", i, a.Results[i])
		}
	}
	if a := answer(); !a.Results[0].Duplicate || a.Results[0].Error != nil {
		t.Errorf("the same report again: %+v, want a duplicate", a.Results[0])
	}
}
