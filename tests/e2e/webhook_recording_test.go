package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/webhook"
	"github.com/portier/portier/tests/peers"
)

// TestRecordingFinishedWebhook: in a real `portier run`, a record task
// with 2 s segments records an ffmpeg publish; a real HTTP receiver,
// verifying every signature, gets one recording.finished per closed
// segment while the stream is live, with the file's size and a duration of
// about 2 s, and the last segment's after the publisher stops. Every file
// in the recording directory is announced exactly once, by the name, size
// and start time the recordings API lists, and its download_url serves the
// file's bytes (with an API token), which ffprobe reads.
func TestRecordingFinishedWebhook(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	recv := newHookReceiver(t)
	a := startAllInOne(t, "--task-url-allow", "127.0.0.0/8")
	out, err := exec.Command(peers.PortierBinary(t), "token", "add", "--username", "admin", "--scopes", "read,write,admin", "--data-dir", a.dir).Output()
	if err != nil {
		t.Fatalf("portier token add --scopes admin: %v", err)
	}
	a.token = strings.TrimSpace(string(out))

	var ep struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	if code := a.api(t, "POST", "/api/v1/webhooks", map[string]any{"url": recv.srv.URL + "/rec",
		"events": []string{webhook.RecordingFinished, webhook.StreamOffline}}, &ep); code != http.StatusCreated || ep.Secret == "" {
		t.Fatalf("create webhook: HTTP %d %+v", code, ep)
	}
	recv.setSecret(ep.Secret)
	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "rechook"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	var cfg struct {
		ID int64 `json:"id"`
	}
	if code := a.api(t, "POST", fmt.Sprintf("/api/v1/streams/%d/task-configs", st.ID),
		map[string]any{"type": "record", "name": "archive", "segment_seconds": 2, "format": "ts", "enabled": true}, &cfg); code != http.StatusCreated {
		t.Fatalf("create record config: HTTP %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pub := peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{})
	testutil.Eventually(t, 30*time.Second, "record task running", func() bool {
		ts := a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].State == "running"
	})
	// Three segments closed while live, each announced within a couple of
	// seconds of the next one starting.
	t0 := time.Now()
	testutil.Eventually(t, 40*time.Second, "three recording.finished while live", func() bool {
		return recv.count(webhook.RecordingFinished) >= 3
	})
	live := recv.count(webhook.RecordingFinished)
	t.Logf("%d recording.finished while live, %v after the task ran", live, time.Since(t0).Round(time.Millisecond))
	// Stop the publish inside a segment that has media on disk, so that
	// the last segment is a recording, not a file opened at the cut.
	dir := compile.RecordingDir(filepath.Join(a.dir, "recordings"), int64(st.ID))
	files := func() map[string]int64 {
		ents, _ := os.ReadDir(dir)
		m := map[string]int64{}
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".ts") {
				m[e.Name()] = fi.Size()
			}
		}
		return m
	}
	testutil.Eventually(t, 10*time.Second, "a segment being written with media in it", func() bool {
		newest := ""
		fs := files()
		for n := range fs {
			newest = max(newest, n)
		}
		return newest != "" && fs[newest] >= 64<<10 && recv.count(webhook.RecordingFinished) == len(fs)-1
	})
	live = recv.count(webhook.RecordingFinished)
	pub.Stop()
	testutil.Eventually(t, 30*time.Second, "record task stopped after the publish ended", func() bool {
		ts := a.tasks(t, st.ID)
		return len(ts) == 1 && ts[0].State == "stopped"
	})

	// The last segment, closed when the publisher stopped, is announced too.
	testutil.Eventually(t, 20*time.Second, "one recording.finished per file", func() bool {
		return recv.count(webhook.RecordingFinished) >= len(files())
	})
	var events []webhook.RecordingData
	recv.mu.Lock()
	for i, ev := range recv.events {
		if ev.Type == webhook.RecordingFinished {
			var d webhook.RecordingData
			var raw struct{ Data json.RawMessage }
			if err := json.Unmarshal([]byte(recv.bodies[i]), &raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw.Data, &d); err != nil {
				t.Fatal(err)
			}
			events = append(events, d)
		}
	}
	if len(recv.bad) > 0 {
		t.Errorf("deliveries that did not verify: %q", recv.bad)
	}
	recv.mu.Unlock()

	onDisk := files()
	if len(events) != len(onDisk) || len(onDisk) < 4 {
		t.Fatalf("%d recording.finished for %d files %v; want one per file, at least 4", len(events), len(onDisk), onDisk)
	}
	var list struct {
		Items []apiRecording `json:"items"`
	}
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d/recordings?limit=100", st.ID), nil, &list); code != 200 {
		t.Fatalf("GET recordings: HTTP %d", code)
	}
	listed := map[string]apiRecording{}
	for _, r := range list.Items {
		listed[r.Name] = r
	}
	seen := map[string]bool{}
	last := ""
	for _, d := range events {
		if seen[d.File] {
			t.Errorf("%s announced twice", d.File)
		}
		seen[d.File] = true
		if d.File > last {
			last = d.File
		}
	}
	_, httpPort, _ := net.SplitHostPort(a.http)
	for i, d := range events {
		size, ok := onDisk[d.File]
		if !ok {
			t.Errorf("event %d names %q, which is not in %s", i, d.File, dir)
			continue
		}
		if d.StreamID != int64(st.ID) || d.App != "live" || d.Name != "rechook" || d.TaskConfigID != cfg.ID || d.TaskID == 0 || d.Format != "ts" || d.Node != "e2e-concierge" {
			t.Errorf("event %d: %+v; want stream %d live/rechook, config %d, a task, format ts, node e2e-concierge", i, d, st.ID, cfg.ID)
		}
		if d.Size <= 0 || d.Size != size {
			t.Errorf("%s: size %d, the file has %d bytes", d.File, d.Size, size)
		}
		if r := listed[d.File]; !r.StartTime.Equal(d.StartTime) {
			t.Errorf("%s: start_time %s, the recordings API says %s", d.File, d.StartTime, r.StartTime)
		}
		// Every segment but the last is cut at the first keyframe (1 s
		// GOP) after 2 s; the last one ends with the publish.
		if d.File != last && (d.DurationSeconds < 1.5 || d.DurationSeconds > 3.1) {
			t.Errorf("%s: duration %.3f s, want about 2 s (segment_seconds 2)", d.File, d.DurationSeconds)
		}
		if d.File == last && (d.DurationSeconds <= 0 || d.DurationSeconds > 3.1) {
			t.Errorf("last segment %s: duration %.3f s, want (0, 3]", d.File, d.DurationSeconds)
		}
		want := fmt.Sprintf("http://127.0.0.1:%s/api/v1/streams/%d/recordings/%s", httpPort, st.ID, d.File)
		if d.DownloadURL != want {
			t.Errorf("%s: download_url %q, want %q", d.File, d.DownloadURL, want)
		}
	}
	for i, d := range events[:live] {
		if d.File == last {
			t.Errorf("event %d, sent while live, names the last segment %s", i, d.File)
		}
	}

	// Each download_url serves the file; ffprobe reads what it served and
	// finds the event's duration.
	for _, d := range events {
		body := download(t, a.token, d.DownloadURL)
		if int64(len(body)) != d.Size {
			t.Errorf("%s: downloaded %d bytes, the event says %d", d.File, len(body), d.Size)
			continue
		}
		p := filepath.Join(t.TempDir(), d.File)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		probe, err := probeFile(t, p)
		if err != nil {
			t.Errorf("%s: %v", d.File, err)
			continue
		}
		if diff := probe.Duration - d.DurationSeconds; diff < -0.25 || diff > 0.25 {
			t.Errorf("%s: ffprobe says %.3f s, the event %.3f s", d.File, probe.Duration, d.DurationSeconds)
		}
		t.Logf("%s: %d bytes, %.3f s (ffprobe %.3f s)", d.File, d.Size, d.DurationSeconds, probe.Duration)
	}
	// No late duplicates: the downloads and probes above took a few of
	// the concierge's report passes.
	if n := recv.count(webhook.RecordingFinished); n != len(events) {
		t.Errorf("%d recording.finished now, %d before", n, len(events))
	}
}

func download(t *testing.T, token, url string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %v", url, resp.StatusCode, err)
	}
	return b
}
