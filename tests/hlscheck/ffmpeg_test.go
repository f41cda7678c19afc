package hlscheck_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os/exec"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/tests/hlscheck"
	"github.com/portier/portier/tests/peers"
)

// TestCompiledHLSAcrossRestart runs the compiled HLS command with real
// ffmpeg, reading a lavfi publish from a real RTMP relay (nginx-rtmp),
// against a recorder standing in for the HLS origin; stops it the way the
// concierge does and starts it again with the credential of the next epoch
// (a failover), and checks what reached the origin: every EXTINF within
// TARGETDURATION, the media sequence only going up and continuing upward
// across the restart, the restart marked EXT-X-DISCONTINUITY, program date
// times on every segment, key frames aligned across the encoded renditions
// (equal segment durations), no segment URL written twice with other
// bytes, and every write carrying its run's credential.
func TestCompiledHLSAcrossRestart(t *testing.T) {
	ffmpeg := peers.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	relay := peers.NginxRTMP(t, peers.NginxOpts{})
	peers.Publish(t, ctx, relay.RTMPURL("live", "show"), peers.PublishOpts{})

	rec := hlscheck.NewRecorder()
	origin := httptest.NewServer(rec)
	defer origin.Close()

	const streamID, taskID, tok = 7, 3, "cluster-tok"
	ladder := []compile.Rendition{
		{Preset: "360p"},
		{Name: "low", Width: 320, Height: 180, FPS: 15, VideoBitrate: 300, AudioBitrate: 64},
		{Preset: "copy", Name: "src"},
		{Preset: "audio"},
	}
	d, err := compile.Compile(compile.TaskConfigInput{Type: compile.TypeHLS, Renditions: ladder},
		compile.StreamState{ID: streamID, App: "live", Name: "show"},
		compile.Env{RelayRTMPURL: "rtmp://127.0.0.1:1", HLSOriginURL: origin.URL})
	if err != nil {
		t.Fatal(err)
	}
	// What the concierge runs: the description rebased on the relay near
	// it, with the assignment's credential.
	raw, _ := json.Marshal(d)
	var wd wire.Description
	if err := json.Unmarshal(raw, &wd); err != nil {
		t.Fatal(err)
	}
	wd = wd.Rebase("rtmp://" + relay.RTMPAddr)
	renditions := []string{"360p", "low", "src", "audio"}
	prefix := compile.HLSPath(streamID) + "/"

	// segmentsAfter counts the segment PUTs of each rendition from request n on.
	segmentsAfter := func(n int) map[string]int {
		out := map[string]int{}
		for _, q := range rec.Requests()[n:] {
			if q.Method == "PUT" && strings.HasSuffix(q.Path, ".ts") {
				out[path.Base(path.Dir(q.Path))]++
			}
		}
		return out
	}
	run := func(epoch int64) (cred string) {
		cred = hlscred.Sign(tok, hlscred.Cred{StreamID: streamID, TaskID: taskID, Epoch: epoch})
		rd, err := wd.WithCredential(cred)
		if err != nil {
			t.Fatal(err)
		}
		first := len(rec.Requests())
		cmd := exec.CommandContext(ctx, ffmpeg, rd.Args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(45 * time.Second)
		for {
			got := segmentsAfter(first)
			enough := true
			for _, r := range renditions {
				enough = enough && got[r] >= 3
			}
			if enough {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("epoch %d: segments %v after 45 s\n%s", epoch, got, stderr.String())
			}
			time.Sleep(100 * time.Millisecond) // polling the recorder, not waiting for a guess
		}
		// Stop as the concierge does: SIGTERM, a second one after a grace.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
		}
		t.Logf("epoch %d stderr: %s", epoch, stderr.String())
		return cred
	}
	cred1 := run(1)
	cred2 := run(2)

	for _, p := range rec.Checker.Problems() {
		t.Error(p)
	}
	for _, p := range rec.Reused() {
		t.Errorf("%s was PUT twice with different bytes", p)
	}
	// Each write carries the credential of the run that made it. (Runs are
	// told apart by credential, not by arrival: the last writes of a
	// stopped ffmpeg may still be in the recorder's hands when the next
	// one starts.)
	byRun := map[string][]hlscheck.Request{}
	for _, q := range rec.Requests() {
		switch q.Auth {
		case "Bearer " + cred1, "Bearer " + cred2:
			byRun[q.Auth] = append(byRun[q.Auth], q)
		default:
			t.Errorf("%s %s: Authorization %q is neither run's credential", q.Method, q.Path, q.Auth)
		}
		if !strings.HasPrefix(q.Path, prefix) {
			t.Errorf("%s %s: outside %s", q.Method, q.Path, prefix)
		}
	}
	versionsOf := func(cred, u string) []hlscheck.Media {
		var out []hlscheck.Media
		for _, q := range byRun["Bearer "+cred] {
			if q.Method == "PUT" && q.Path == u {
				m, err := hlscheck.ParseMedia(q.Body)
				if err != nil {
					t.Fatalf("%s: %v", u, err)
				}
				out = append(out, m)
			}
		}
		return out
	}
	for _, r := range renditions {
		u := prefix + r + "/index.m3u8"
		vs1, vs2 := versionsOf(cred1, u), versionsOf(cred2, u)
		if len(vs1) == 0 || len(vs2) == 0 {
			t.Errorf("%s: %d playlists from the first run, %d from the second", u, len(vs1), len(vs2))
			continue
		}
		var maxSeq1 int64
		for _, v := range vs1 {
			for _, s := range v.Segments {
				maxSeq1 = max(maxSeq1, s.Seq)
			}
		}
		v2 := vs2[0]
		if v2.MediaSequence <= maxSeq1 {
			t.Errorf("%s: the second run starts at sequence %d, not above the first run's %d", u, v2.MediaSequence, maxSeq1)
		}
		if !v2.Segments[0].Discontinuity {
			t.Errorf("%s: the second run's first segment is not marked EXT-X-DISCONTINUITY", u)
		}
		vs := rec.Checker.Versions(u)
		for _, v := range vs {
			if v.EndList {
				t.Errorf("%s: EXT-X-ENDLIST after a stop (a restart continues the stream)", u)
			}
			for _, s := range v.Segments {
				if s.ProgramDateTime.IsZero() {
					t.Errorf("%s: segment %d has no EXT-X-PROGRAM-DATE-TIME", u, s.Seq)
				}
				if want := fmt.Sprintf("%d.ts", s.Seq); s.URI != want {
					t.Errorf("%s: segment %d is named %s, want %s", u, s.Seq, s.URI, want)
				}
			}
		}
		t.Logf("%s: run 1 up to sequence %d, run 2 from %d; %d versions", u, maxSeq1, v2.MediaSequence, len(vs))
	}
	// Aligned key frames: the encoded renditions cut the same segments.
	durs := func(r string) map[int64]float64 {
		out := map[int64]float64{}
		for _, v := range rec.Checker.Versions(prefix + r + "/index.m3u8") {
			for _, s := range v.Segments {
				out[s.Seq] = s.Duration
			}
		}
		return out
	}
	a, b := durs("360p"), durs("low")
	common := 0
	for seq, da := range a {
		if db, ok := b[seq]; ok {
			common++
			if math.Abs(da-db) > 0.1 {
				t.Errorf("segment %d lasts %.3f s in 360p but %.3f s in low: key frames not aligned", seq, da, db)
			}
		}
	}
	if common < 4 {
		t.Errorf("only %d segments common to 360p and low", common)
	}
	// The master playlist: what ffmpeg 5.1 writes for each variant.
	mb, err := rec.Fetch(prefix + "master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := hlscheck.ParseMaster(mb)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("master playlist:\n%s", mb)
	byURI := map[string]hlscheck.Variant{}
	for _, v := range vs {
		byURI[v.URI] = v
	}
	for _, r := range renditions {
		v, ok := byURI[r+"/index.m3u8"]
		if !ok {
			t.Errorf("master playlist lacks %s", r)
			continue
		}
		if v.Attrs["BANDWIDTH"] == "" || v.Attrs["BANDWIDTH"] == "0" {
			t.Errorf("variant %s has no BANDWIDTH: %v", r, v.Attrs)
		}
		if v.Attrs["CODECS"] == "" {
			if r != "src" {
				t.Errorf("variant %s has no CODECS: %v", r, v.Attrs)
			}
			// ffmpeg 5.1 writes no CODECS for a stream copy (and a
			// BANDWIDTH from the audio alone): the playlist rewriter
			// has to add them.
			t.Logf("variant %s (copy): no CODECS from ffmpeg 5.1: %v", r, v.Attrs)
		}
		for _, a := range []string{"AVERAGE-BANDWIDTH", "FRAME-RATE"} {
			if _, ok := v.Attrs[a]; !ok {
				t.Logf("variant %s: ffmpeg 5.1 writes no %s", r, a)
			}
		}
		if r != "audio" && v.Attrs["RESOLUTION"] == "" {
			t.Errorf("variant %s has no RESOLUTION: %v", r, v.Attrs)
		}
	}
	// The same checks through a Fetch, as they will run against the origin.
	c := hlscheck.NewChecker()
	if _, err := c.Poll(rec.Fetch, prefix+"master.m3u8"); err != nil {
		t.Fatal(err)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Errorf("Poll: %v", p)
	}
}
