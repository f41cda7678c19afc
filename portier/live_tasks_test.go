package portier

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
)

func (e *liveEnv) addConfig(t *testing.T, typ, name, spec string, enabled bool) *models.TaskConfig {
	t.Helper()
	c := &models.TaskConfig{StreamID: e.stream.ID, Type: typ, Name: name, Enabled: enabled, Spec: models.RawJSON(spec)}
	if err := e.store.CreateTaskConfig(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.lv.ConfigChanged(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *liveEnv) tasks(t *testing.T) []models.Task {
	t.Helper()
	out, _, err := e.store.ListTasks(context.Background(), models.TaskFilter{StreamID: e.stream.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(out) // oldest first
	return out
}

// running lists the tasks whose desired state is running, by config name.
func (e *liveEnv) running(t *testing.T) map[int64]models.Task {
	out := map[int64]models.Task{}
	for _, tk := range e.tasks(t) {
		if tk.DesiredState == models.DesiredRunning && tk.ConfigID != nil {
			out[*tk.ConfigID] = tk
		}
	}
	return out
}

func (e *liveEnv) publish(t *testing.T, node string) {
	t.Helper()
	code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{
		"node": node, "app": "live", "name": "show", "query": "key=" + e.stream.PublishKey,
	})
	if code != 200 {
		t.Fatalf("publish: %d %v", code, out)
	}
}

func (e *liveEnv) done(t *testing.T, node string) {
	t.Helper()
	if code, out := e.call(t, "POST", "/internal/v1/publish/done", map[string]any{"node": node, "app": "live", "name": "show"}); code != 200 {
		t.Fatalf("done: %d %v", code, out)
	}
}

func TestTaskCompilationFollowsLiveState(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		yt := e.addConfig(t, models.TypeRestream, "yt", `{"target":"rtmp://a.example.com/live2","key":"k1"}`, true)
		rec := e.addConfig(t, models.TypeRecord, "rec", `{"segment_seconds":30,"format":"ts"}`, true)
		hls := e.addConfig(t, models.TypeHLS, "hls", `{"renditions":[{"name":"360p","width":640,"height":360,"video_bitrate_kbps":800}]}`, false)
		if n := len(e.tasks(t)); n != 0 {
			t.Fatalf("%d tasks before the stream is live", n)
		}
		// A pull config runs whether the stream is live or not.
		pull := e.addConfig(t, models.TypePull, "cam", `{"source":"rtsp://cam.example.com/s1"}`, true)
		run := e.running(t)
		if len(run) != 1 || run[pull.ID].Type != models.TypePull ||
			!slices.Contains(run[pull.ID].Description.Args, "rtmp://127.0.0.1:1935/live/show?key="+e.stream.PublishKey) {
			t.Fatalf("pull task: %+v", run)
		}

		e.publish(t, "origin-1")
		e.publish(t, "origin-2") // second origin: no second set of tasks
		run = e.running(t)
		if len(run) != 3 || run[hls.ID].ID != 0 {
			t.Fatalf("running after live: %+v", run)
		}
		yTask := run[yt.ID]
		if yTask.State != models.TaskPending || yTask.Description.Command != "ffmpeg" || yTask.Description.Cost != taskcost.Copy ||
			yTask.Description.Outputs[0] != "rtmp://a.example.com/live2/k1" || yTask.Description.Input != "rtmp://127.0.0.1:1935/live/show?portier_internal=restream&portier_sig="+nodewire.InternalPlaySig(testToken, "live/show", "restream") {
			t.Fatalf("restream task: %+v", yTask)
		}
		if rd := run[rec.ID].Description; !strings.Contains(strings.Join(rd.Args, " "), "-segment_time 30") ||
			len(rd.Dirs) != 1 || !strings.HasSuffix(rd.Dirs[0], "/stream."+strconv.FormatInt(e.stream.ID, 10)) {
			t.Fatalf("record task: %+v", run[rec.ID].Description.Args)
		}

		// A rename keeps the running task; the config version follows.
		name := "youtube"
		up, err := e.store.UpdateTaskConfig(ctx, e.stream.ID, yt.ID, models.TaskConfigUpdate{Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.lv.ConfigChanged(ctx, yt.ID); err != nil {
			t.Fatal(err)
		}
		run = e.running(t)
		if run[yt.ID].ID != yTask.ID || run[yt.ID].ConfigVersion != up.Version {
			t.Fatalf("rename replaced the task or lost the version: %+v", run[yt.ID])
		}
		// A new key replaces it.
		up, err = e.store.UpdateTaskConfig(ctx, e.stream.ID, yt.ID, models.TaskConfigUpdate{Spec: []byte(`{"target":"rtmp://a.example.com/live2","key":"k2"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.lv.ConfigChanged(ctx, yt.ID); err != nil {
			t.Fatal(err)
		}
		run = e.running(t)
		if run[yt.ID].ID == yTask.ID || run[yt.ID].Description.Outputs[0] != "rtmp://a.example.com/live2/k2" || run[yt.ID].ConfigVersion != up.Version {
			t.Fatalf("key change did not replace the task: %+v", run[yt.ID])
		}
		old, _ := e.store.TaskByID(ctx, yTask.ID)
		if old.DesiredState != models.DesiredStopped || !strings.Contains(old.Reason, "replaced") {
			t.Fatalf("replaced task: %+v", old)
		}
		// Enabling a config while live starts it; disabling stops it.
		on, offv := true, false
		if _, err := e.store.UpdateTaskConfig(ctx, e.stream.ID, hls.ID, models.TaskConfigUpdate{Enabled: &on}); err != nil {
			t.Fatal(err)
		}
		e.srv.lv.ConfigChanged(ctx, hls.ID)
		if d := e.running(t)[hls.ID].Description; d.Cost != taskcost.Encode || !slices.Contains(d.Args, "-var_stream_map") {
			t.Fatalf("hls task: %+v", d)
		}
		if _, err := e.store.UpdateTaskConfig(ctx, e.stream.ID, rec.ID, models.TaskConfigUpdate{Enabled: &offv}); err != nil {
			t.Fatal(err)
		}
		e.srv.lv.ConfigChanged(ctx, rec.ID)
		if _, ok := e.running(t)[rec.ID]; ok {
			t.Fatal("disabled config still running")
		}
		// Deleting a config stops its task.
		if err := e.srv.lv.ConfigDeleting(ctx, hls.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.store.DeleteTaskConfig(ctx, e.stream.ID, hls.ID); err != nil {
			t.Fatal(err)
		}
		// Offline: everything but the pull stops.
		e.done(t, "origin-1")
		if len(e.running(t)) != 2 {
			t.Fatal("tasks stopped while origin-2 still publishes")
		}
		e.done(t, "origin-2")
		run = e.running(t)
		if len(run) != 1 || run[pull.ID].ID == 0 {
			t.Fatalf("running after offline: %+v", run)
		}
		// A key rotation reaches the pull task.
		st, err := e.store.RotateStreamKey(ctx, e.stream.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.lv.StreamChanged(ctx, e.stream.ID); err != nil {
			t.Fatal(err)
		}
		if run = e.running(t); !slices.Contains(run[pull.ID].Description.Args, "rtmp://127.0.0.1:1935/live/show?key="+st.PublishKey) {
			t.Fatalf("pull task after key rotation: %+v", run[pull.ID].Description.Args)
		}
	})
}

func TestTaskCompileFailureIsVisible(t *testing.T) {
	forEachLiveStoreWith(t, func(p *Params) {
		p.Live.Compile.RecordDir = "relative/dir" // a deployment mistake
	}, func(t *testing.T, e *liveEnv) {
		rec := e.addConfig(t, models.TypeRecord, "rec", `{}`, true)
		e.publish(t, "origin-1")
		var failed *models.Task
		for _, tk := range e.tasks(t) {
			if tk.ConfigID != nil && *tk.ConfigID == rec.ID {
				failed = &tk
			}
		}
		if failed == nil || failed.State != models.TaskFailed || failed.DesiredState != models.DesiredStopped || !strings.Contains(failed.LastError, "absolute") {
			t.Fatalf("failed compile: %+v", failed)
		}
	})
}

// TestBurstOfStreamsGoingLive: streams that go live at once are compiled in
// shared batches, yet every publish is answered only after its stream's
// tasks exist, and each config gets exactly one task.
func TestBurstOfStreamsGoingLive(t *testing.T) {
	forEachLiveStore(t, func(t *testing.T, e *liveEnv) {
		ctx := context.Background()
		const streams = 24
		keys := make([]string, streams)
		ids := make([]int64, streams)
		for i := range streams {
			st, err := e.store.CreateStream(ctx, "live", fmt.Sprintf("burst%d", i), e.stream.OwnerID)
			if err != nil {
				t.Fatal(err)
			}
			keys[i], ids[i] = st.PublishKey, st.ID
			for _, name := range []string{"a", "b"} {
				c := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRestream, Name: name, Enabled: true,
					Spec: models.RawJSON(`{"target":"rtmp://` + name + `.example.com/live2","key":"k"}`)}
				if err := e.store.CreateTaskConfig(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Two origins at once: the one that turns the stream live
				// waits for its compilation, so once both are answered
				// the tasks exist.
				var both sync.WaitGroup
				for _, node := range []string{"origin-1", "origin-2"} {
					both.Add(1)
					go func() {
						defer both.Done()
						code, out := e.call(t, "POST", "/internal/v1/publish/authorize", map[string]any{
							"node": node, "app": "live", "name": fmt.Sprintf("burst%d", i), "query": "key=" + keys[i],
						})
						if code != 200 {
							t.Errorf("publish burst%d on %s: %d %v", i, node, code, out)
						}
					}()
				}
				both.Wait()
				tasks, _, err := e.store.ListTasks(ctx, models.TaskFilter{StreamID: ids[i], Limit: 10})
				if err != nil || len(tasks) != 2 {
					t.Errorf("burst%d answered with %d tasks (%v), want 2", i, len(tasks), err)
				}
			}()
		}
		wg.Wait()
		for i, id := range ids {
			tasks, _, err := e.store.ListTasks(ctx, models.TaskFilter{StreamID: id, Limit: 10})
			if err != nil || len(tasks) != 2 || tasks[0].ConfigID == nil || tasks[1].ConfigID == nil || *tasks[0].ConfigID == *tasks[1].ConfigID {
				t.Errorf("burst%d: %d tasks (%v), want one per config", i, len(tasks), err)
			}
		}
	})
}
