package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
)

// TestHLSTaskS3Origin is the HLS task across separate roles: a control
// plane whose HLS tasks PUT to a real `portier hls-origin --storage s3://`
// on a real S3 server (versitygw), an origin relay, and a real
// `portier concierge` process (real supervisord) running the task's
// ffmpeg. Real ffmpeg publishes; the ladder read through the origin keeps
// hlscheck's promises and advances, plays in ffprobe, and its segments
// are objects in the bucket.
func TestHLSTaskS3Origin(t *testing.T) {
	killOrphanTasks(t)
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	store, err := models.Open(ctx, filepath.Join(t.TempDir(), "control.db"))
	if err != nil {
		t.Fatal(err)
	}
	originAddr := peers.FreeAddr(t)
	// The control plane's handler is set once the origin's address is
	// known (the compiler needs it, the origin needs the control URL).
	var handler atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := handler.Load().(http.Handler)
		if h == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	env := []string{"AWS_ACCESS_KEY_ID=" + g.AccessKey, "AWS_SECRET_ACCESS_KEY=" + g.SecretKey}
	hp := startHLSOrigin(t, "hls-s3", hs.URL, "s3://media/portier/hls", env, false,
		"--s3-endpoint", g.Endpoint(), "--s3-insecure", "--s3-region", "us-east-1")
	srv, err := portier.New(portier.Params{Store: store, ClusterToken: relayClusterToken, Logger: testLogger(t, "control"),
		Live: portier.LiveParams{HeartbeatInterval: 300 * time.Millisecond,
			Compile: compile.Env{FFmpeg: "ffmpeg", RelayRTMPURL: "rtmp://" + originAddr, HLSOriginURL: "http://" + hp.httpAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartBackground(ctx)
	handler.Store(srv.Handler())
	if err := waitHTTP(ctx, "http://"+hp.httpAddr+"/healthz"); err != nil {
		t.Fatalf("hls-origin did not come up: %v", err)
	}

	u, err := store.CreateUser(ctx, "hls", "hls-password-123", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.CreateStream(ctx, "live", "ladder", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeHLS, Name: "hls", Enabled: true,
		Spec: models.MustJSON(map[string]any{"segment_seconds": 1, "renditions": []map[string]any{
			{"name": "small", "width": 320, "height": 180, "video_bitrate_kbps": 300},
			{"preset": "audio"},
		}})}
	if err := store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "hls-relay", RTMPAddr: originAddr, ControlURL: hs.URL})

	startConciergeProc(t, hs.URL, "hls-concierge")

	pub := peers.Publish(t, ctx, "rtmp://"+originAddr+"/live/ladder?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()
	t0 := time.Now()
	eventually(t, 60*time.Second, "the hls task running", func() bool {
		ts, _, err := store.ListTasks(ctx, models.TaskFilter{StreamID: st.ID})
		return err == nil && len(ts) == 1 && ts[0].State == models.TaskRunning
	})
	t.Logf("publish to task running: %v", time.Since(t0).Round(time.Millisecond))

	fetch := bearerFetch(relayClusterToken)
	master := fmt.Sprintf("http://%s/hls/s/%d/master.m3u8", hp.httpAddr, st.ID)
	c := hlscheck.NewChecker()
	eventually(t, 30*time.Second, "master and media playlists readable through the S3 origin", func() bool {
		vs, err := c.Poll(fetch, master)
		return err == nil && len(vs) == 2
	})
	t.Logf("publish to playlists readable: %v", time.Since(t0).Round(time.Millisecond))
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Poll(fetch, master); err != nil {
			t.Logf("poll: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // poll interval, bounded by the deadline
	}
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems:\n%s", strings.Join(p, "\n"))
	}
	for _, u := range c.URLs() {
		vs := c.Versions(u)
		if lastSeq(vs) <= lastSeq(vs[:1]) {
			t.Fatalf("%s did not advance over %d versions", u, len(vs))
		}
	}
	small := fmt.Sprintf("http://%s/hls/s/%d/small/index.m3u8", hp.httpAddr, st.ID)
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-headers", "Authorization: Bearer "+relayClusterToken+"\r\n",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0", small).Output()
	if err != nil || !strings.Contains(string(out), "h264") {
		t.Fatalf("ffprobe %s: %v %q", small, err, out)
	}
	segs, _ := filepath.Glob(filepath.Join(g.Dir, "media", "portier", "hls", "s", fmt.Sprint(st.ID), "small", "*.ts"))
	if len(segs) < 3 {
		t.Fatalf("segments in the bucket: %v", segs)
	}
	t.Logf("ffprobe small: %s; %d segment objects in the bucket", strings.TrimSpace(string(out)), len(segs))
}
