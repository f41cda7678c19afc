package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
)

// runnerCredential reads the HLS credential from the command line of a
// task process (ffmpeg's "-headers Authorization: Bearer CRED").
func runnerCredential(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "", err
	}
	for _, a := range bytes.Split(b, []byte{0}) {
		if v, ok := strings.CutPrefix(string(a), "Authorization: Bearer "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("process %d has no Authorization header in its command line", pid)
}

// alive reports whether any of pids is a live (non-zombie) process.
func alive(pids []int) bool {
	for _, pid := range pids {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] != "Z" {
			return true
		}
	}
	return false
}

// newRunSegment is the first segment, in the versions seen of one media
// playlist, that is marked EXT-X-DISCONTINUITY and whose sequence number is
// above atKill, the last one listed when the concierge was killed: ffmpeg
// marks the first segment of every run (discont_start), and the old
// runner's segments after the kill continue its run unmarked. The bool is
// false while no such segment was seen.
func newRunSegment(vs []hlscheck.Media, atKill int64) (hlscheck.Segment, bool) {
	for _, m := range vs {
		for _, s := range m.Segments {
			if s.Seq > atKill && s.Discontinuity {
				return s, true
			}
		}
	}
	return hlscheck.Segment{}, false
}

// lastBefore is the highest sequence number below seq in the versions seen,
// -1 if none: the old runner's last segment when seq is the new runner's
// first.
func lastBefore(vs []hlscheck.Media, seq int64) int64 {
	last := int64(-1)
	for _, m := range vs {
		for _, s := range m.Segments {
			if s.Seq < seq {
				last = max(last, s.Seq)
			}
		}
	}
	return last
}

// TestHLSTaskFailover: the HLS task's ladder survives kill -9 of the
// concierge running it. A control plane (SQLite, 1 s heartbeats: a 5 s
// lease), an origin relay, a real `portier hls-origin` process on a
// directory, and two real `portier concierge` processes, one under
// Python's supervisord (which gets the task and is killed) and one under
// ochinchina's. Real ffmpeg publishes; hlscheck polls every media playlist
// through the origin before, across and after the kill -9: the media sequence never decreases and continues
// above the old runner's, the new runner's first segment is marked
// EXT-X-DISCONTINUITY, every segment has a program date time and an EXTINF
// within the target duration, and no segment URL serves two different
// contents. The old runner's ffmpeg ends within supervisord's stopwaitsecs
// of its concierge's death, and its own credential, read from its command
// line, is refused after the failover. ffprobe plays every rendition afterwards.
// The gap (kill to the first segment of the new runner visible in each
// playlist) is logged.
func TestHLSTaskFailover(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	peers.RequireTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	t0 := time.Now()

	dir := t.TempDir()
	cl := startHLSCluster(t, ctx, time.Second, dir, nil)
	base := t.TempDir()
	// The task goes to the concierge with the most free capacity: Python's
	// here, so its kill -9 is the one tested (TestConciergeFailover's
	// placement, a tie broken by name, kills ochinchina's).
	params := map[string]cgChildParams{
		"cg-ochinchina": {Control: cl.control, Token: relayClusterToken, Name: "cg-ochinchina", DataDir: filepath.Join(base, "a"), Supervisord: supervisortest.Ochinchina(t), Capacity: 8},
		"cg-python":     {Control: cl.control, Token: relayClusterToken, Name: "cg-python", DataDir: filepath.Join(base, "b"), Supervisord: supervisortest.Python(t), Capacity: 9},
	}
	procs := map[string]*cgProc{}
	var markers []string // this test's task processes carry one of these
	for name, p := range params {
		procs[name] = cgStart(t, p)
		markers = append(markers, procs[name].supervisorMarker(t))
	}
	testutil.Eventually(t, 30*time.Second, "both concierges registered", func() bool {
		ns, _ := cl.store.ListNodes(ctx, models.NodeRoleConcierge)
		return len(ns) == 2
	})
	st := cl.ladder(t, ctx, "failover", []map[string]any{
		{"preset": "360p"},
		{"name": "small", "width": 320, "height": 180, "video_bitrate_kbps": 300},
		{"preset": "audio"},
	})
	peers.Publish(t, ctx, cl.publishURL(st), peers.PublishOpts{})
	var first *models.Task
	testutil.Eventually(t, 60*time.Second, "the hls task running", func() bool {
		first = cl.task(t, ctx, st.ID)
		return first != nil && first.State == models.TaskRunning
	})
	t.Logf("task %d running on %s (epoch %d) %v after the start", first.ID, first.NodeName, first.Epoch, time.Since(t0).Round(time.Millisecond))

	fetch := bearerFetch(relayClusterToken)
	master := cl.master(st.ID)
	c := hlscheck.NewChecker().RequireProgramDateTime()
	testutil.Eventually(t, 30*time.Second, "master and media playlists readable", func() bool {
		vs, err := c.Poll(fetch, master)
		return err == nil && len(vs) == 3
	})
	urls := c.URLs()
	sort.Strings(urls)
	// poll reads every playlist, and every few polls every listed segment.
	polls := 0
	poll := func() {
		if _, err := c.Poll(fetch, master); err != nil {
			t.Logf("poll: %v", err)
		}
		if polls++; polls%4 == 0 {
			if _, err := c.ReadSegments(fetch); err != nil {
				t.Logf("read segments: %v", err)
			}
		}
	}
	// Three segments of the first runner in every playlist.
	testutil.Eventually(t, 20*time.Second, "three segments of the first runner", func() bool {
		poll()
		for _, u := range urls {
			if vs := c.Versions(u); len(vs[len(vs)-1].Segments) < 3 {
				return false
			}
		}
		return true
	})
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems before the kill:\n%s", strings.Join(p, "\n"))
	}

	// The old runner: its processes and the credential its ffmpeg uses.
	oldPIDs := taskProcs(first.ID, markers...)
	if len(oldPIDs) != 1 {
		t.Fatalf("%d processes run the task, want 1: %v", len(oldPIDs), oldPIDs)
	}
	oldCred, err := runnerCredential(oldPIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(oldCred, fmt.Sprintf("hls1.%d.%d.%d.", st.ID, first.ID, first.Epoch)) {
		t.Fatalf("the runner's credential %.20s… is not for stream %d task %d epoch %d", oldCred, st.ID, first.ID, first.Epoch)
	}

	// kill -9 the concierge running the task.
	other := "cg-python"
	if first.NodeName == other {
		other = "cg-ochinchina"
	}
	poll()
	atKill := map[string]int64{}
	for _, u := range urls {
		atKill[u] = lastSeq(c.Versions(u))
	}
	pc := countProcs(first.ID, markers...)
	tKill := time.Now()
	procs[first.NodeName].signal(syscall.SIGKILL)
	// The new runner's first segment is the first one after the kill
	// marked EXT-X-DISCONTINUITY (newRunSegment). Program date times cannot
	// tell the runners apart: ffmpeg dates segments from its own start, and
	// one that started late under load runs seconds ahead of the wall clock.
	var oldGone, running time.Duration
	seen := map[string]time.Duration{} // playlist → kill to its first new segment
	deadline := tKill.Add(40 * time.Second)
	for len(seen) < len(urls) {
		if time.Now().After(deadline) {
			t.Fatalf("not every playlist has a segment marked EXT-X-DISCONTINUITY (the new runner's first) 40 s after the kill (seen %v, runner gone %v, task %+v)", seen, oldGone, cl.task(t, ctx, st.ID))
		}
		poll()
		now := time.Since(tKill)
		if oldGone == 0 && !alive(oldPIDs) {
			oldGone = now
		}
		if tk := cl.task(t, ctx, st.ID); running == 0 && tk != nil && tk.NodeName == other && tk.State == models.TaskRunning {
			running = now
		}
		for _, u := range urls {
			if _, ok := seen[u]; !ok {
				if _, ok := newRunSegment(c.Versions(u), atKill[u]); ok {
					seen[u] = now
				}
			}
		}
		time.Sleep(200 * time.Millisecond) // poll interval, bounded by the deadline
	}
	maxRunners, overlap := pc.result()
	second := cl.task(t, ctx, st.ID)
	var gaps []string
	var worst time.Duration
	for _, u := range urls {
		gaps = append(gaps, fmt.Sprintf("%s %v", u[strings.Index(u, "/hls/"):], seen[u].Round(time.Millisecond)))
		worst = max(worst, seen[u])
	}
	t.Logf("kill -9 of %s: old ffmpeg gone after %v; task running on %s (epoch %d) after %v; first new segment visible: %s (worst %v); max runners %d, overlap %v",
		first.NodeName, oldGone.Round(time.Millisecond), second.NodeName, second.Epoch, running.Round(time.Millisecond),
		strings.Join(gaps, ", "), worst.Round(time.Millisecond), maxRunners, overlap)
	// supervisord gets SIGTERM when its concierge dies and kills what
	// is left of the task stopwaitsecs (3 s) later; the runners may
	// overlap by a moment, which the fencing below makes harmless.
	for oldGone == 0 && time.Since(tKill) < 10*time.Second {
		time.Sleep(100 * time.Millisecond) // bounded by the 10 s above
		if !alive(oldPIDs) {
			oldGone = time.Since(tKill)
		}
	}
	if oldGone == 0 || oldGone > 8*time.Second {
		t.Errorf("the old runner's ffmpeg %v outlived its concierge by %v (supervisord's stopwaitsecs is 3 s)", oldPIDs, oldGone)
	}
	if second.NodeName != other || second.Epoch <= first.Epoch {
		t.Fatalf("after the kill the task is on %s at epoch %d, want %s above epoch %d", second.NodeName, second.Epoch, other, first.Epoch)
	}

	// The old runner's own credential is fenced off: were its ffmpeg
	// orphaned, none of its uploads would land.
	put := func(path, body string) int {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/hls/s/%d/%s", cl.origin.httpAddr, st.ID, path), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+oldCred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	staleSeg := strconv.FormatInt(time.Now().Unix()+1000, 10) + ".ts"
	if code := put("small/"+staleSeg, strings.Repeat("\x47", 188*4)); code != http.StatusConflict {
		t.Errorf("segment PUT with the old runner's credential: HTTP %d, want 409", code)
	}
	if code := put("small/index.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n"+staleSeg+"\n"); code != http.StatusConflict {
		t.Errorf("playlist PUT with the old runner's credential: HTTP %d, want 409", code)
	}
	if m := metricsText(t, cl.origin.httpAddr); !strings.Contains(m, `portier_hls_origin_uploads_total{kind="segment",result="fenced"}`) {
		t.Errorf("fenced uploads not counted:\n%s", grepLines(m, "uploads_total"))
	} else {
		t.Logf("origin uploads:\n%s", grepLines(m, "uploads_total"))
	}

	// A few more seconds of the new runner, every segment read once more.
	after := time.Now().Add(4 * time.Second)
	for time.Now().Before(after) {
		poll()
		time.Sleep(200 * time.Millisecond) // poll interval, bounded by the deadline
	}
	n, err := c.ReadSegments(fetch)
	if err != nil {
		t.Errorf("read segments after the failover: %v", err)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Fatalf("hlscheck problems across the failover:\n%s", strings.Join(p, "\n"))
	}
	for _, u := range urls {
		vs := c.Versions(u)
		nw, _ := newRunSegment(vs, atKill[u])
		lastOld := lastBefore(vs, nw.Seq)
		short := u[strings.Index(u, "/hls/"):]
		if lastOld < atKill[u] {
			t.Errorf("%s: the old runner's last segment %d is below the last listed at the kill, %d", short, lastOld, atKill[u])
		}
		if end := lastSeq(vs); end <= nw.Seq {
			t.Errorf("%s: the new runner did not continue past its first segment %d (last %d)", short, nw.Seq, end)
		}
		// What a player reloading the playlist meets first after the
		// failover: the new runner's playlist lists only its own segments.
		var firstNew hlscheck.Media
		for _, m := range vs {
			if len(m.Segments) > 0 && m.Segments[len(m.Segments)-1].Seq >= nw.Seq {
				firstNew = m
				break
			}
		}
		listed := 0.0
		for _, s := range firstNew.Segments {
			listed += s.Duration
		}
		t.Logf("%s: old runner's last segment %d, new runner's first %d (discontinuity %v, PDT %s), last %d; %d versions polled; "+
			"the first version with the new runner's segment lists %d segments (%.1f s, target %d s)",
			short, lastOld, nw.Seq, nw.Discontinuity, nw.ProgramDateTime.Format("15:04:05.000"), lastSeq(vs), len(vs),
			len(firstNew.Segments), listed, firstNew.TargetDuration)
	}
	t.Logf("%d segments re-read after the failover, each the same bytes as before", n)

	// ffprobe plays every rendition from the origin.
	probeRenditions(t, ctx, relayClusterToken, urls)
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}
