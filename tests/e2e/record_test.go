package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/tests/peers"
)

// apiTask is a task as GET /api/v1/tasks shows it.
type apiTask struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	State     string `json:"state"`
	Node      string `json:"node"`
	Reason    string `json:"reason"`
	LastError string `json:"last_error"`
	LogTail   string `json:"log_tail"`
	Restarts  int    `json:"restarts"`
}

func (a *allInOne) tasks(t *testing.T, stream uint) []apiTask {
	t.Helper()
	var out struct {
		Items []apiTask `json:"items"`
	}
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/tasks?stream=%d", stream), nil, &out); code != 200 {
		t.Fatalf("GET tasks: HTTP %d", code)
	}
	return out.Items
}

// fileProbe is what ffprobe says about a recorded file.
type fileProbe struct {
	Codecs   []string
	Duration float64
}

func probeFile(t *testing.T, path string) (fileProbe, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, peers.RequireTool(t, "ffprobe"), "-v", "error",
		"-show_entries", "format=duration:stream=codec_name", "-of", "json", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		fi, _ := os.Stat(path)
		size := int64(-1)
		if fi != nil {
			size = fi.Size()
		}
		return fileProbe{}, fmt.Errorf("ffprobe %s (%d bytes): %w: %s", filepath.Base(path), size, err, strings.TrimSpace(stderr.String()))
	}
	var r struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fileProbe{}, err
	}
	var p fileProbe
	for _, s := range r.Streams {
		p.Codecs = append(p.Codecs, s.CodecName)
	}
	sort.Strings(p.Codecs)
	p.Duration, _ = strconv.ParseFloat(r.Format.Duration, 64)
	return p, nil
}

type apiRecording struct {
	Name            string    `json:"name"`
	Format          string    `json:"format"`
	Size            int64     `json:"size"`
	StartTime       time.Time `json:"start_time"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// TestRunRecord is the record task end to end in `portier run`: a record
// config (2 s segments, mp4) on a stream made through the API; ffmpeg
// publishes; the embedded concierge's ffmpeg writes segment files rotated
// every ~2 s into the data dir; stopping the publish stops the task; every
// file plays in ffprobe (h264 + aac, duration > 0); and
// GET /api/v1/streams/{id}/recordings lists exactly those files.
func TestRunRecord(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	a := startAllInOne(t)

	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "rec1"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	var cfg map[string]any
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "record", "name": "archive", "segment_seconds": 2, "format": "mp4", "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create record config: HTTP %d %v", code, cfg)
	}
	var empty struct {
		Items []apiRecording `json:"items"`
		Total int            `json:"total"`
	}
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d/recordings", st.ID), nil, &empty); code != 200 || empty.Total != 0 {
		t.Fatalf("recordings before any publish: HTTP %d %+v", code, empty)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	pub := peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{})
	testutil.Eventually(t, 30*time.Second, "record task running", func() bool {
		ts := a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].State == "running"
	})
	t.Logf("publish to record task running: %v", time.Since(t0).Round(time.Millisecond))

	dir := compile.RecordingDir(filepath.Join(a.dir, "recordings"), int64(st.ID))
	files := func() []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".mp4") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	// Four files means at least three finished segments; the newest one
	// has media in it too (a stop right as a segment opens leaves a file
	// with no frames, which no player can open).
	testutil.Eventually(t, 40*time.Second, "four segment files", func() bool {
		fs := files()
		if len(fs) < 4 {
			return false
		}
		sort.Strings(fs)
		fi, err := os.Stat(filepath.Join(dir, fs[len(fs)-1]))
		return err == nil && fi.Size() > 32<<10
	})
	t.Logf("four segment files after %v: %v", time.Since(t0).Round(time.Millisecond), files())

	t1 := time.Now()
	pub.Stop()
	testutil.Eventually(t, 30*time.Second, "record task stopped after the publish ended", func() bool {
		ts := a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].State == "stopped"
	})
	t.Logf("publish stop to record task stopped: %v", time.Since(t1).Round(time.Millisecond))

	names := files()
	if len(names) < 4 {
		t.Fatalf("%d files after the stop: %v", len(names), names)
	}
	sort.Strings(names)
	var total float64
	for i, n := range names {
		p, err := probeFile(t, filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: codecs %v, %.2f s", n, p.Codecs, p.Duration)
		if strings.Join(p.Codecs, ",") != "aac,h264" || p.Duration <= 0 {
			t.Errorf("%s: codecs %v duration %.2f, want aac+h264 and > 0", n, p.Codecs, p.Duration)
		}
		// Rotation by time: every segment but the last is ~2 s (cut at the
		// first keyframe after 2 s; keyframes every second).
		if i < len(names)-1 && (p.Duration < 1.5 || p.Duration > 3.5) {
			t.Errorf("%s lasts %.2f s, want about 2 s (segment_seconds 2)", n, p.Duration)
		}
		total += p.Duration
	}
	t.Logf("%d segments, %.1f s recorded", len(names), total)

	var list struct {
		Items []apiRecording `json:"items"`
		Total int            `json:"total"`
	}
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d/recordings", st.ID), nil, &list); code != 200 {
		t.Fatalf("GET recordings: HTTP %d", code)
	}
	if list.Total != len(names) || len(list.Items) != len(names) {
		t.Fatalf("API lists %d recordings (total %d), the directory has %d", len(list.Items), list.Total, len(names))
	}
	for i, r := range list.Items { // newest first
		want := names[len(names)-1-i]
		fi, err := os.Stat(filepath.Join(dir, want))
		if err != nil {
			t.Fatal(err)
		}
		if r.Name != want || r.Size != fi.Size() || r.Format != "mp4" || r.StartTime.IsZero() || r.DurationSeconds <= 0 {
			t.Errorf("recording %d: %+v; want %s of %d bytes with a start time and a duration", i, r, want, fi.Size())
		}
		if d := time.Since(r.StartTime); d < 0 || d > 5*time.Minute {
			t.Errorf("recording %s starts %v ago", r.Name, d)
		}
	}
}
