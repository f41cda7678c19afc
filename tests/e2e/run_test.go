package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/tests/peers"
)

// allInOne is a `portier run` process started by a test.
type allInOne struct {
	dir              string
	http, rtmp, rtsp string
	token            string
	proc             *exec.Cmd
	log              *bytes.Buffer
}

// startAllInOne starts `bin/portier run` on free loopback ports with a fresh
// data dir (and extra options), waits until it is ready and makes an admin
// API token with `portier token add`.
func startAllInOne(t *testing.T, extra ...string) *allInOne {
	t.Helper()
	bin := peers.PortierBinary(t)
	a := &allInOne{
		dir:  t.TempDir(),
		http: peers.FreeAddr(t), rtmp: peers.FreeAddr(t), rtsp: peers.FreeAddr(t),
		log: &bytes.Buffer{},
	}
	cmd := exec.Command(bin, append([]string{"run", "--data-dir", a.dir, "--http-addr", a.http,
		"--rtmp-addr", a.rtmp, "--rtsp-addr", a.rtsp, "--rtsp-udp-addr", "127.0.0.1:0", "--name", "e2e"}, extra...)...)
	cmd.Env = append(os.Environ(), "PORTIER_ADMIN_PASSWORD=e2e-admin-password")
	logFile, err := os.Create(filepath.Join(a.dir, "portier.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start portier run: %v", err)
	}
	a.proc = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("portier run log:\n%s", tail(string(b), 8000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, "http://"+a.http+"/readyz"); err != nil {
		t.Fatalf("portier run never became ready: %v", err)
	}
	out, err := exec.Command(bin, "token", "add", "--username", "admin", "--data-dir", a.dir).Output()
	if err != nil {
		t.Fatalf("portier token add: %v", err)
	}
	a.token = strings.TrimSpace(string(out))
	if !strings.HasPrefix(a.token, "ptk_") {
		t.Fatalf("portier token add printed %q, want a ptk_ token", a.token)
	}
	return a
}

// api calls the REST API and decodes the JSON answer into out (if not nil).
func (a *allInOne) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+a.http+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

type apiStream struct {
	ID     uint   `json:"id"`
	Name   string `json:"name"`
	App    string `json:"app"`
	Key    string `json:"key"`
	Live   bool   `json:"live"`
	Ingest struct {
		RTMPURL      string `json:"rtmp_url"`
		OBSServer    string `json:"obs_server"`
		OBSStreamKey string `json:"obs_stream_key"`
	} `json:"ingest"`
}

func (a *allInOne) live(t *testing.T, id uint) bool {
	var st apiStream
	if code := a.api(t, "GET", fmt.Sprintf("/api/v1/streams/%d", id), nil, &st); code != 200 {
		t.Fatalf("GET stream %d: HTTP %d", id, code)
	}
	return st.Live
}

// TestRunPublishAuthorization is the control plane's proof through our own
// relay: `portier run`, a stream created through the API, ffmpeg publishing
// with a wrong key (refused), the right key (live), the key as the stream
// name (live under the public name), and live turning false when it stops.
func TestRunPublishAuthorization(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	a := startAllInOne(t)

	var st apiStream
	if code := a.api(t, "POST", "/api/v1/streams", map[string]any{"name": "cam1"}, &st); code != http.StatusCreated {
		t.Fatalf("create stream: HTTP %d", code)
	}
	if st.Key == "" || st.App != "live" || st.Live || st.Ingest.RTMPURL == "" {
		t.Fatalf("create stream answered %+v", st)
	}
	base := "rtmp://" + a.rtmp + "/live/"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A wrong key is refused: ffmpeg exits with an error and the stream stays offline.
	wrong := peers.Publish(t, ctx, base+"cam1?key=not-the-key", peers.PublishOpts{Duration: 20 * time.Second})
	if _, done := wrong.WaitTimeout(15 * time.Second); !done {
		t.Fatal("ffmpeg with a wrong key is still publishing after 15 s")
	}
	if wrong.ExitCode() == 0 {
		t.Fatalf("ffmpeg with a wrong key exited 0; stderr:\n%s", wrong.Stderr())
	}
	if a.live(t, st.ID) {
		t.Fatal("stream is live after a refused publish")
	}
	var audit struct {
		Items []struct {
			Action, Result, Reason string
		} `json:"items"`
	}
	a.api(t, "GET", "/api/v1/audit?action=publish.authorize", nil, &audit)
	denied := false
	for _, e := range audit.Items {
		if e.Result == "denied" && strings.Contains(strings.ToLower(e.Reason), "key") {
			denied = true
		}
	}
	if !denied {
		t.Fatalf("no denied publish in the audit log: %+v", audit.Items)
	}

	// The right key as a query parameter: live, playable over RTMP and HTTP-FLV.
	right := peers.Publish(t, ctx, st.Ingest.RTMPURL, peers.PublishOpts{})
	testutil.Eventually(t, 15*time.Second, "stream live after publishing with the right key", func() bool { return a.live(t, st.ID) })
	res, err := peers.ProbeUntil(t, ctx, base+"cam1")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("ffprobe over RTMP: %v %v", res.Codecs(), err)
	}
	res, err = peers.ProbeUntil(t, ctx, "http://"+a.http+"/live/cam1.flv")
	if err != nil || !res.HasCodec("h264") || !res.HasCodec("aac") {
		t.Fatalf("ffprobe over HTTP-FLV: %v %v", res.Codecs(), err)
	}
	right.Stop()
	testutil.Eventually(t, 15*time.Second, "stream offline after the publisher stopped", func() bool { return !a.live(t, st.ID) })

	// The key alone as the stream name (OBS style): published under the public name.
	obs := peers.Publish(t, ctx, st.Ingest.OBSServer+"/"+st.Ingest.OBSStreamKey, peers.PublishOpts{})
	testutil.Eventually(t, 15*time.Second, "stream live after publishing with the key as the name", func() bool { return a.live(t, st.ID) })
	res, err = peers.ProbeUntil(t, ctx, base+"cam1")
	if err != nil || !res.HasCodec("h264") {
		t.Fatalf("ffprobe of the public name after a key-as-name publish: %v %v", res.Codecs(), err)
	}
	obs.Stop()
	testutil.Eventually(t, 15*time.Second, "stream offline after the OBS-style publisher stopped", func() bool { return !a.live(t, st.ID) })
}
