package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ, spec string
		field     string // "" means valid
		want      string // substring of the normalised spec
	}{
		{"restream", `{"target":"rtmp://a.example/app","key":"k_1"}`, "", `"format":"flv"`},
		{"restream", `{"target":"rtmps://a.example:443/app"}`, "", `rtmps://`},
		{"restream", `{"target":"srt://a.example:9000?streamid=x"}`, "", `"format":"mpegts"`},
		{"restream", `{"target":"file:///etc/passwd"}`, "target", ""},
		{"restream", `{"target":"http://a.example/x"}`, "target", ""},
		{"restream", `{"target":"rtmp://a.example/app x"}`, "target", ""},
		{"restream", `{"target":"rtmp://a.example/app\u0001"}`, "target", ""},
		{"restream", `{"target":"rtmp:///nohost"}`, "target", ""},
		{"restream", `{"target":"rtmp://x\"><script>/app"}`, "target", ""},
		{"restream", `{"target":"rtmp://a.example/app'$(id)"}`, "target", ""},
		{"restream", `{"target":"rtmp://[::1]:1935/app"}`, "", `[::1]`},
		{"restream", `{"target":"rtmp://a.example/app","key":"bad key"}`, "key", ""},
		{"restream", `{"target":"rtmp://a.example/app","format":"mkv"}`, "format", ""},
		{"restream", `{"target":"rtmp://a.example/app","extra":1}`, "extra", ""},
		{"restream", `{}`, "target", ""},
		// Platform key shapes (compile.RestreamPresets).
		{"restream", `{"target":"rtmp://a.rtmp.youtube.com/live2","key":"abcd-1234-efgh-5678-ijkl"}`, "", `live2`},
		{"restream", `{"target":"rtmp://b.rtmp.youtube.com/live2?backup=1","key":"abcd-1234-efgh-5678-ijkl"}`, "", `backup=1`},
		{"restream", `{"target":"rtmp://a.rtmp.youtube.com/live2","key":"live_123_abc"}`, "key", ""},
		{"restream", `{"target":"rtmp://a.rtmp.youtube.com/live2"}`, "key", ""},
		{"restream", `{"target":"rtmp://a.rtmp.youtube.com/live2/abcd-1234-efgh-5678-ijkl"}`, "", `live2`},
		{"restream", `{"target":"rtmp://live.twitch.tv/app","key":"live_123456789_AbCdEf012"}`, "", `twitch`},
		{"restream", `{"target":"rtmp://fra05.contribute.live-video.net/app","key":"abcd-1234-efgh-5678-ijkl"}`, "key", ""},
		{"restream", `{"target":"rtmps://live-api-s.facebook.com:443/rtmp/","key":"FB-1234567890-0-AbCd_ef"}`, "", `facebook`},
		{"restream", `{"target":"rtmps://live-api-s.facebook.com:443/rtmp/","key":"rtmps://live-api-s.facebook.com:443/rtmp/FB-1"}`, "key", ""},
		{"restream", `{"target":"rtmps://fa723fc1b171.global-contribute.live-video.net/app","key":"sk_us-west-2_AbC"}`, "", `rtmps://`},
		{"restream", `{"target":"rtmp://a.example/app","key":"rtmp://a.example/app/k"}`, "key", ""},
		{"record", `{"segment_seconds":10,"format":"ts"}`, "", `"segment_seconds":10`},
		{"record", `{}`, "", `"format":"mp4"`},
		{"record", `{"format":"avi"}`, "format", ""},
		{"record", `{"segment_seconds":-1}`, "segment_seconds", ""},
		{"record", `{"segment_seconds":"ten"}`, "segment_seconds", ""},
		{"pull", `{"source":"rtsp://cam.local:554/stream"}`, "", `rtsp://`},
		{"pull", `{"source":"https://cdn.example/x/index.m3u8"}`, "", `m3u8`},
		{"pull", `{"source":"https://cdn.example/x/video.mp4"}`, "source", ""},
		{"pull", `{"source":"file:///dev/zero"}`, "source", ""},
		{"hls", `{"renditions":[{"name":"720p","width":1280,"height":720,"video_bitrate_kbps":2500,"audio_bitrate_kbps":128}]}`, "", `"segment_seconds":2`},
		{"hls", `{"renditions":[]}`, "renditions", ""},
		{"hls", `{"renditions":[{"name":"a","width":1281,"height":720,"video_bitrate_kbps":2500}]}`, "renditions[0].width", ""},
		{"hls", `{"renditions":[{"name":"a","width":640,"height":360,"video_bitrate_kbps":800},{"name":"a","width":640,"height":360,"video_bitrate_kbps":800}]}`, "renditions[1].name", ""},
		{"ftp", `{}`, "type", ""},
	}
	for _, c := range cases {
		got, err := models.ParseSpec(c.typ, []byte(c.spec))
		if c.field == "" {
			if err != nil || !strings.Contains(string(got), c.want) {
				t.Errorf("ParseSpec(%s, %s) = %s, %v; want containing %s", c.typ, c.spec, got, err, c.want)
			}
			continue
		}
		var se *models.SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("ParseSpec(%s, %s) error %v; want field %q", c.typ, c.spec, err, c.field)
		}
	}
}

func TestTaskConfigsTasksAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s := n.Store
			u, _ := s.CreateUser(ctx, "op", "password1", models.RoleOperator)
			st, _ := s.CreateStream(ctx, "live", "cam", u.ID)
			c := &models.TaskConfig{StreamID: st.ID, Type: models.TypeHLS, Name: "ladder", Enabled: true,
				Spec: models.RawJSON(`{"renditions":[{"name":"360p","width":640,"height":360,"video_bitrate_kbps":800}]}`)}
			if err := s.CreateTaskConfig(ctx, c); err != nil || c.Version != 1 {
				t.Fatalf("create: %v", err)
			}
			dup := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "ladder"}
			if err := s.CreateTaskConfig(ctx, dup); !errors.Is(err, models.ErrConflict) {
				t.Fatalf("duplicate config name: %v", err)
			}
			off := false
			up, err := s.UpdateTaskConfig(ctx, st.ID, c.ID, models.TaskConfigUpdate{Enabled: &off})
			if err != nil || up.Enabled || up.Version != 2 {
				t.Fatalf("update: %+v %v", up, err)
			}
			if _, err := s.UpdateTaskConfig(ctx, st.ID, c.ID, models.TaskConfigUpdate{Spec: []byte(`{"renditions":[]}`)}); err == nil {
				t.Fatal("invalid spec accepted on update")
			}
			if _, err := s.UpdateTaskConfig(ctx, st.ID+99, c.ID, models.TaskConfigUpdate{Enabled: &off}); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("config under another stream: %v", err)
			}
			hls, err := up.HLS()
			if err != nil || hls.Renditions[0].Name != "360p" {
				t.Fatalf("HLS(): %+v %v", hls, err)
			}

			task := &models.Task{ConfigID: &c.ID, StreamID: st.ID, Type: models.TypeHLS, DesiredState: models.DesiredRunning,
				State: models.TaskRunning, NodeName: "c1", Epoch: 3,
				Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "rtmp://x/live/cam"}, Cost: 2}}
			if err := s.DB.Create(task).Error; err != nil {
				t.Fatal(err)
			}
			list, total, err := s.ListTasks(ctx, models.TaskFilter{StreamID: st.ID, OwnerID: u.ID, State: models.TaskRunning})
			if err != nil || total != 1 || list[0].Description.Args[1] != "rtmp://x/live/cam" {
				t.Fatalf("ListTasks: %+v %d %v", list, total, err)
			}
			if _, total, _ := s.ListTasks(ctx, models.TaskFilter{OwnerID: u.ID + 1}); total != 0 {
				t.Fatalf("other owner sees %d tasks", total)
			}
			rt, err := s.RequestTaskRestart(ctx, task.ID, "user asked")
			if err != nil || rt.Epoch != 4 || rt.State != models.TaskPending || rt.NodeName != "" || rt.Restarts != 1 {
				t.Fatalf("restart: %+v %v", rt, err)
			}
			if err := s.DeleteTaskConfig(ctx, st.ID, c.ID); err != nil {
				t.Fatal(err)
			}
			kept, err := s.TaskByID(ctx, task.ID)
			if err != nil || kept.ConfigID != nil {
				t.Fatalf("task after config delete: %+v %v", kept, err)
			}

			before := time.Now().UTC().Add(-time.Second)
			for _, a := range []string{"stream.create", "stream.delete", "stream.create"} {
				if err := s.Audit(ctx, &models.AuditEvent{Actor: "op", Action: a, Object: "stream/1", Details: models.MustJSON(map[string]any{"n": 1})}); err != nil {
					t.Fatal(err)
				}
			}
			ev, total, err := s.ListAudit(ctx, models.AuditFilter{Action: "stream.create", Actor: "op", Since: before})
			if err != nil || total != 2 || string(ev[0].Details) != `{"n":1}` {
				t.Fatalf("ListAudit: %+v %d %v", ev, total, err)
			}
			if _, total, _ := s.ListAudit(ctx, models.AuditFilter{Since: time.Now().UTC().Add(time.Hour)}); total != 0 {
				t.Fatalf("future since: %d", total)
			}
			if _, total, _ := s.ListAudit(ctx, models.AuditFilter{Actor: "op", Until: before}); total != 0 {
				t.Fatalf("until before the events: %d", total)
			}
			if _, total, _ := s.ListAudit(ctx, models.AuditFilter{Actor: "op", Since: before, Until: time.Now().UTC().Add(time.Second)}); total != 3 {
				t.Fatalf("since..until around the events: %d, want 3", total)
			}
			if _, total, _ := s.ListAudit(ctx, models.AuditFilter{Actor: "op", ExceptActions: []string{"stream.create"}}); total != 1 {
				t.Fatalf("all but stream.create: %d, want 1", total)
			}
		})
	}
}

// TestTaskRunHistory: lists show one row per task config (its newest run;
// a task whose config was deleted is its own row), and a config's earlier
// runs are its history.
func TestTaskRunHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s := n.Store
			u, _ := s.CreateUser(ctx, "op", "password1", models.RoleOperator)
			st, _ := s.CreateStream(ctx, "live", "cam", u.ID)
			var cfgs []*models.TaskConfig
			for _, name := range []string{"archive", "yt"} {
				c := &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: name, Enabled: true, Spec: models.RawJSON(`{}`)}
				if err := s.CreateTaskConfig(ctx, c); err != nil {
					t.Fatal(err)
				}
				cfgs = append(cfgs, c)
			}
			run := func(c *models.TaskConfig, state string) int64 {
				task := &models.Task{StreamID: st.ID, Type: models.TypeRecord, DesiredState: models.DesiredStopped, State: state,
					Description: models.TaskDescription{Command: "ffmpeg"}}
				if c != nil {
					task.ConfigID = &c.ID
				}
				if err := s.DB.Create(task).Error; err != nil {
					t.Fatal(err)
				}
				return task.ID
			}
			// Three go-lives of "archive", two of "yt", two orphans.
			run(cfgs[0], models.TaskStopped)
			run(cfgs[1], models.TaskFailed)
			run(cfgs[0], models.TaskStopped)
			orphan1 := run(nil, models.TaskStopped)
			orphan2 := run(nil, models.TaskStopped)
			ytLast := run(cfgs[1], models.TaskStopped)
			archiveLast := run(cfgs[0], models.TaskRunning)

			latest, total, err := s.ListTasks(ctx, models.TaskFilter{StreamID: st.ID, LatestPerConfig: true})
			if err != nil || total != 4 {
				t.Fatalf("latest per config: total %d, %v; want 4 (archive, yt, two orphans)", total, err)
			}
			var ids []int64
			for _, l := range latest {
				ids = append(ids, l.ID)
			}
			if want := []int64{archiveLast, ytLast, orphan2, orphan1}; fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("latest per config = %v; want %v", ids, want)
			}
			// A state filter picks among the newest runs: yt's failed run
			// is history, not a failing config.
			if _, total, _ := s.ListTasks(ctx, models.TaskFilter{State: models.TaskFailed, LatestPerConfig: true}); total != 0 {
				t.Fatalf("failed newest runs: %d; want 0", total)
			}
			hist, total, err := s.ListTasks(ctx, models.TaskFilter{ConfigID: cfgs[0].ID})
			if err != nil || total != 3 || hist[0].ID != archiveLast {
				t.Fatalf("archive history: %d runs, first %v, %v", total, hist, err)
			}
			runs, err := s.TaskRuns(ctx, []int64{cfgs[0].ID, cfgs[1].ID})
			if err != nil || runs[cfgs[0].ID] != 3 || runs[cfgs[1].ID] != 2 {
				t.Fatalf("TaskRuns = %v, %v; want 3 and 2", runs, err)
			}
		})
	}
}
