package api

import (
	"encoding/json"
	"testing"

	"github.com/portier/portier/models"
)

// A running task shows its last progress report; a task in another state
// has none (its last figures are history).
func TestTaskViewProgress(t *testing.T) {
	p := `{"frame":51,"fps":10.19,"bitrate":199700,"speed":0.919,"uptime_ms":7449}`
	run := apiViewTask(&models.Task{State: models.TaskRunning, Progress: p})
	b, _ := json.Marshal(run)
	var out struct {
		Progress map[string]float64 `json:"progress"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Progress["fps"] != 10.19 || out.Progress["bitrate"] != 199700 {
		t.Fatalf("running task view %s (%v)", b, err)
	}
	for _, st := range []string{models.TaskBackoff, models.TaskStopped} {
		b, _ := json.Marshal(apiViewTask(&models.Task{State: st, Progress: p}))
		out.Progress = nil
		if err := json.Unmarshal(b, &out); err != nil || out.Progress != nil {
			t.Errorf("%s task shows progress: %s (%v)", st, b, err)
		}
	}
}
