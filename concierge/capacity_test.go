package concierge_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
)

// TestCapacityInCores runs a real concierge registered with 2 cores under
// a real supervisord, and tasks that cost what the compiler says a restream
// and a one-rendition HLS encode cost: the concierge runs more than two
// copy tasks (a copy is a small fraction of a core), an encode still takes
// about a core, and the next encode waits with a reason in cores. The
// tasks' processes are sleeps: placement and supervision are what is
// tested, not ffmpeg.
func TestCapacityInCores(t *testing.T) {
	ctx := context.Background()
	s := startStackWith(t, concierge.Params{SupervisorBinary: supervisortest.Ochinchina(t), Capacity: 2, HTTPAddr: "127.0.0.1:0"})
	st := compile.StreamState{ID: s.stream, App: "live", Name: "s", Key: "k"}
	env := compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1935", HLSOriginURL: "http://127.0.0.1:8090", RecordDir: t.TempDir()}
	costOf := func(cfg compile.TaskConfigInput) int {
		t.Helper()
		d, err := compile.Compile(cfg, st, env)
		if err != nil {
			t.Fatal(err)
		}
		return d.Cost
	}
	copyCost := costOf(compile.TaskConfigInput{Type: compile.TypeRestream, Target: "rtmp://127.0.0.1:9/live", Key: "x"})
	recordCost := costOf(compile.TaskConfigInput{Type: compile.TypeRecord})
	encodeCost := costOf(compile.TaskConfigInput{Type: compile.TypeHLS, Renditions: []compile.Rendition{{Preset: "360p"}}})
	if copyCost != recordCost || encodeCost < 8*copyCost || taskcost.Cores(encodeCost) < 0.9 || taskcost.Cores(encodeCost) > 1.1 {
		t.Fatalf("costs: restream %d, record %d, 360p encode %d units; want copies a small fraction of an encode of about a core",
			copyCost, recordCost, encodeCost)
	}
	add := func(typ string, cost int) int64 {
		t.Helper()
		tk, _, err := s.store.CreateCompiledTask(ctx, &models.Task{StreamID: s.stream, Type: typ, DesiredState: models.DesiredRunning,
			State: models.TaskPending, Description: models.TaskDescription{Command: "sleep", Args: []string{"300"}, Cost: cost}})
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}
	const copies = 6 // 0.6 cores at 0.10 each: three times what the old rule (a core each) allowed on 2 cores
	var ids []int64
	for i := range copies {
		typ := models.TypeRestream
		if i%2 == 1 {
			typ = models.TypeRecord
		}
		ids = append(ids, add(typ, copyCost))
	}
	encode := add("hls", encodeCost)
	for _, id := range append(ids, encode) {
		s.waitTask(t, id, "running on the 2-core concierge", func(tk *models.Task) bool {
			return tk.State == models.TaskRunning && tk.NodeName == "c1"
		})
	}
	// 2 cores less 0.6 and 1.0: a second encode does not fit.
	second := add("hls", encodeCost)
	free := taskcost.FromCores(2) - copies*copyCost - encodeCost
	want := "no concierge with enough free capacity: needs " + taskcost.Format(encodeCost) + " cores, largest free " + taskcost.Format(free)
	s.waitTask(t, second, "the second encode pending", func(tk *models.Task) bool {
		return tk.State == models.TaskPending && tk.Reason == want
	})

	// The concierge counts the same cost, and shows it in cores.
	used := copies*copyCost + encodeCost
	s.waitTask(t, encode, "the heartbeat's cost", func(*models.Task) bool {
		n, err := s.store.NodeByName(ctx, "c1")
		return err == nil && n.Load.CostUsed == used && n.Capacity == 2
	})
	resp, err := http.Get("http://" + s.c.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{"portier_concierge_capacity 2", "portier_concierge_cost_used " + strconv.FormatFloat(taskcost.Cores(used), 'g', -1, 64)} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}
