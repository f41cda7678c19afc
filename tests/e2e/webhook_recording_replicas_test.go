package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/webhook"
	"github.com/portier/portier/tests/peers"
)

// TestRecordingFinishedReplicas: two `portier serve` replicas on one
// Postgres, an origin and a `portier concierge` given both (--control
// A,B). A record task (2 s segments) records a publish; its files are
// announced through A until kill -9 of A, then through B. Every file in
// the recording directory is announced exactly once across the replicas,
// the last one after the publisher stops.
func TestRecordingFinishedReplicas(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	dsn, ok := modelstest.Schema(t)
	if !ok {
		t.Skip("Postgres unreachable (set PORTIER_TEST_POSTGRES_URL; CI=true makes this a failure)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := models.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.SetTaskURLPolicy(models.TaskURLPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	u, err := store.CreateUser(ctx, "owner", "owner-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.CreateStream(ctx, "live", "rec", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateTaskConfig(ctx, &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "archive", Enabled: true,
		Spec: models.MustJSON(models.RecordSpec{SegmentSeconds: 2, Format: "ts"})}); err != nil {
		t.Fatal(err)
	}
	recv := newHookReceiver(t)
	ep, err := store.CreateWebhookEndpoint(ctx, models.WebhookEndpointInput{URL: recv.srv.URL + "/rec",
		Events: []string{models.WebhookRecordingFinished}, Enabled: true}, models.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	recv.setSecret(ep.Secret)

	recDir := t.TempDir()
	originRTMP := peers.FreeAddr(t)
	flags := []string{"--replicas", "2", "--relay-rtmp-url", "rtmp://" + originRTMP, "--record-dir", recDir, "--task-url-allow", "127.0.0.0/8"}
	a := startServeProc(t, "control-a", dsn, flags...)
	b := startServeProc(t, "control-b", dsn, flags...)
	control := a.URL + "," + b.URL
	startRelayProc(t, "origin-1", "origin", control, "--rtmp-addr", originRTMP)
	startConciergeProc(t, control, "cg-rec")

	pub := peers.Publish(t, ctx, "rtmp://"+originRTMP+"/live/rec?key="+st.PublishKey, peers.PublishOpts{})
	dir := compile.RecordingDir(recDir, st.ID)
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
	// midSegment: every closed file is announced and the one being
	// written has media in it (a cut is not due for a while). A replica
	// killed between claiming a file and delivering its event loses the
	// event (deliveries are queued in memory, as for every webhook event),
	// so the kill is timed here.
	midSegment := func(atLeast int) func() bool {
		return func() bool {
			newest := ""
			fs := files()
			for n := range fs {
				newest = max(newest, n)
			}
			n := recv.count(webhook.RecordingFinished)
			return n >= atLeast && fs[newest] >= 64<<10 && n == len(fs)-1
		}
	}
	testutil.Eventually(t, 60*time.Second, "two recording.finished through replica A, mid-segment", midSegment(2))
	a.Kill() // SIGKILL
	before := recv.count(webhook.RecordingFinished)
	testutil.Eventually(t, 30*time.Second, "two more recording.finished through replica B, mid-segment", midSegment(before+2))
	pub.Stop()
	testutil.Eventually(t, 30*time.Second, "the record task stopped and every file announced", func() bool {
		ts, _, _ := store.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
		return len(ts) == 1 && ts[0].State == models.TaskStopped && recv.count(webhook.RecordingFinished) >= len(files())
	})

	onDisk := files()
	seen := map[string]int{}
	recv.mu.Lock()
	for _, ev := range recv.events {
		if ev.Type == webhook.RecordingFinished {
			d, _ := ev.Data.(map[string]any)
			name, _ := d["file"].(string)
			seen[name]++
		}
	}
	bad := len(recv.bad)
	recv.mu.Unlock()
	if bad > 0 {
		t.Errorf("%d deliveries did not verify", bad)
	}
	for f := range onDisk {
		if seen[f] != 1 {
			t.Errorf("%s announced %d times, want once", f, seen[f])
		}
	}
	if len(seen) != len(onDisk) {
		t.Errorf("announced %v, files %v", seen, onDisk)
	}
	var claims int64
	if err := store.DB.Raw("SELECT COUNT(*) FROM finished_recordings WHERE stream_id = ?", st.ID).Scan(&claims).Error; err != nil || claims != int64(len(onDisk)) {
		t.Errorf("%d claims (%v) for %d files", claims, err, len(onDisk))
	}
	t.Logf("%d files announced once each across 2 replicas (%d before kill -9 of A)", len(onDisk), before)
}
