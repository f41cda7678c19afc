package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/relay"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
)

// hlsCluster is the HLS task across separate roles: a control plane
// (SQLite, in this process) whose HLS tasks PUT to a real `portier
// hls-origin` process, and an origin relay (in this process) that encoders
// publish to and task ffmpegs read from. The test starts the concierges.
type hlsCluster struct {
	store   *models.Store
	control string // the control plane's URL
	origin  *hlsOriginProc
	rtmp    string // the relay's RTMP address
	userID  int64
}

// startHLSCluster starts the control plane (nodes heartbeat every hb), the
// origin on storage (a directory or s3://…, with env and extra options) and
// the relay.
func startHLSCluster(t *testing.T, ctx context.Context, hb time.Duration, storage string, env []string, extra ...string) *hlsCluster {
	t.Helper()
	store, err := models.Open(ctx, filepath.Join(t.TempDir(), "control.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The relay's address is held until the relay binds it: the ports
	// picked for the HLS origin meanwhile must not land on it (they did:
	// "address already in use").
	reserved, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reserved.Close() })
	originAddr := reserved.Addr().String()
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
	hp := startHLSOrigin(t, "hls-origin", hs.URL, storage, env, false, extra...)
	srv, err := portier.New(portier.Params{Store: store, ClusterToken: relayClusterToken, Logger: testLogger(t, "control"),
		Live: portier.LiveParams{HeartbeatInterval: hb,
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
	reserved.Close()
	startRelay(t, relay.Params{Role: relay.RoleOrigin, Name: "hls-relay", RTMPAddr: originAddr, ControlURL: hs.URL})
	return &hlsCluster{store: store, control: hs.URL, origin: hp, rtmp: originAddr, userID: u.ID}
}

// ladder creates stream name with an enabled HLS task config of 1 s
// segments and renditions.
func (cl *hlsCluster) ladder(t *testing.T, ctx context.Context, name string, renditions []map[string]any) *models.Stream {
	t.Helper()
	st, err := cl.store.CreateStream(ctx, "live", name, cl.userID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &models.TaskConfig{StreamID: st.ID, Type: models.TypeHLS, Name: "hls", Enabled: true,
		Spec: models.MustJSON(map[string]any{"segment_seconds": 1, "renditions": renditions})}
	if err := cl.store.CreateTaskConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return st
}

// publishURL is where an encoder publishes stream st.
func (cl *hlsCluster) publishURL(st *models.Stream) string {
	return "rtmp://" + cl.rtmp + "/live/" + st.Name + "?key=" + st.PublishKey
}

// task is the current task of stream id (its config's newest), once it exists.
func (cl *hlsCluster) task(t *testing.T, ctx context.Context, streamID int64) *models.Task {
	t.Helper()
	// The newest task of the stream's one config: a stream that went
	// offline and live again (a relay declared dead on a loaded machine, at
	// the test's 300 ms heartbeats) has a new task row, and the task is
	// replaced once when the origin first reports the tracks.
	ts, _, err := cl.store.ListTasks(ctx, models.TaskFilter{StreamID: streamID, LatestPerConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		return nil
	}
	return &ts[0]
}

// master is the URL of stream id's master playlist on the origin.
func (cl *hlsCluster) master(streamID int64) string {
	return fmt.Sprintf("http://%s/hls/s/%d/master.m3u8", cl.origin.httpAddr, streamID)
}

// probeRenditions has real ffprobe play each media playlist (read with the
// cluster token) and find H.264, or AAC in an audio rendition.
func probeRenditions(t *testing.T, ctx context.Context, token string, urls []string) {
	t.Helper()
	for _, u := range urls {
		want := "h264"
		if strings.Contains(u, "audio") {
			want = "aac"
		}
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-headers", "Authorization: Bearer "+token+"\r\n",
			"-show_streams", "-of", "json", u).Output()
		pcancel()
		var probe peers.ProbeResult
		if err != nil || json.Unmarshal(out, &probe) != nil {
			t.Fatalf("ffprobe %s: %v %s", u, err, out)
		}
		if !probe.HasCodec(want) {
			t.Fatalf("ffprobe %s: codecs %v, want %s", u, probe.Codecs(), want)
		}
		t.Logf("ffprobe %s: %v", u[strings.Index(u, "/hls/"):], probe.Codecs())
	}
}

// TestHLSTaskS3Origin is the HLS task across separate roles: a control
// plane whose HLS tasks PUT to a real `portier hls-origin --storage s3://`
// on a real S3 server (versitygw), an origin relay, and a real
// `portier concierge` process (real supervisord) running the task's
// ffmpeg. Real ffmpeg publishes; the ladder read through the origin keeps
// hlscheck's promises and advances, plays in ffprobe, and its segments
// are objects in the bucket.
func TestHLSTaskS3Origin(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	g := peers.StartVersityGW(t)
	g.CreateBucket(t, "media")
	env := []string{"AWS_ACCESS_KEY_ID=" + g.AccessKey, "AWS_SECRET_ACCESS_KEY=" + g.SecretKey}
	cl := startHLSCluster(t, ctx, 300*time.Millisecond, "s3://media/portier/hls", env,
		"--s3-endpoint", g.Endpoint(), "--s3-insecure", "--s3-region", "us-east-1")
	st := cl.ladder(t, ctx, "ladder", []map[string]any{
		{"name": "small", "width": 320, "height": 180, "video_bitrate_kbps": 300},
		{"preset": "audio"},
	})
	startConciergeProc(t, cl.control, "hls-concierge")

	pub := peers.Publish(t, ctx, cl.publishURL(st), peers.PublishOpts{})
	defer pub.Stop()
	t0 := time.Now()
	testutil.Eventually(t, 60*time.Second, "the hls task running", func() bool {
		tk := cl.task(t, ctx, st.ID)
		return tk != nil && tk.State == models.TaskRunning
	})
	t.Logf("publish to task running: %v", time.Since(t0).Round(time.Millisecond))

	fetch := bearerFetch(relayClusterToken)
	master := cl.master(st.ID)
	// OriginChecks: the master served from the S3 backend is completed
	// like the directory backend's (completion is on read, not in storage).
	c := hlscheck.NewChecker().OriginChecks()
	testutil.Eventually(t, 30*time.Second, "master and media playlists readable through the S3 origin", func() bool {
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
	small := fmt.Sprintf("http://%s/hls/s/%d/small/index.m3u8", cl.origin.httpAddr, st.ID)
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
