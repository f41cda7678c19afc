package concierge

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
)

// TestParseProgressOfRealFFmpeg runs ffmpeg with the options the concierge
// gives every task (progressArgs, with a shorter period) on lavfi sources
// and parses what it wrote, as the concierge reads a log: standard output
// and error together.
func TestParseProgressOfRealFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		// wantSize: the output has a size, so a bitrate.
		wantSize, wantFrames bool
	}{
		{"flv video+audio", []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
			"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "flv", filepath.Join(dir, "out.flv")}, true, true},
		{"hls has no size", []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "3",
			"-c:v", "libx264", "-preset", "ultrafast", "-f", "hls", "-hls_time", "1", filepath.Join(dir, "out.m3u8")}, false, true},
		{"audio only", []string{"-f", "lavfi", "-i", "sine=frequency=440", "-t", "3", "-c:a", "aac", "-f", "adts", filepath.Join(dir, "out.aac")}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := withProgress("/usr/bin/ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-y", "-re"}, tc.args...))
			if args[0] != "-progress" || args[1] != "pipe:1" {
				t.Fatalf("withProgress: %q", args)
			}
			args[3] = "0.5" // -stats_period: a few blocks in 3 s
			var log bytes.Buffer
			cmd := exec.Command("ffmpeg", args...)
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Run(); err != nil {
				t.Fatalf("ffmpeg %q: %v\n%s", args, err, log.String())
			}
			out := log.String()
			if strings.Count(out, "progress=continue") < 2 || !strings.HasSuffix(out, "progress=end\n") {
				t.Fatalf("ffmpeg wrote no progress blocks:\n%s", out)
			}
			t.Logf("last block:\n%s", out[strings.LastIndex(out[:len(out)-len("progress=end\n")], "progress=")+len("progress=continue\n"):])
			p, ok := parseProgress(out)
			if !ok {
				t.Fatalf("no block parsed from:\n%s", out)
			}
			if p.OutTimeMS < 2900 || p.OutTimeMS > 3100 || p.Speed < 0.5 || p.Speed > 2 || p.DropFrames != 0 || p.DupFrames != 0 {
				t.Errorf("progress %+v; want 3 s written at about real time", p)
			}
			if tc.wantFrames && (p.Frame < 70 || p.FPS < 15) {
				t.Errorf("progress %+v; want about 75 frames at 25 fps", p)
			}
			if !tc.wantFrames && (p.Frame != 0 || p.FPS != 0) {
				t.Errorf("progress %+v; audio only has no frames", p)
			}
			if tc.wantSize && (p.TotalSize <= 0 || p.Bitrate <= 0) {
				t.Errorf("progress %+v; want a size and a bitrate", p)
			}
			if !tc.wantSize && (p.TotalSize != 0 || p.Bitrate != 0) {
				t.Errorf("progress %+v; ffmpeg says N/A: want 0", p)
			}
			// Every cut of the log parses to a whole block or to none:
			// never to a block with its beginning missing.
			for cut := 0; cut < len(out); cut += 7 {
				q, ok := parseProgress(out[cut:])
				if ok && q.OutTimeMS > 0 && q.Speed == 0 {
					t.Fatalf("tail from byte %d parsed as %+v", cut, q)
				}
			}
			// A failure report leaves the blocks out.
			if s := stripProgress(out); strings.Contains(s, "progress=") || strings.Contains(s, "out_time") {
				t.Fatalf("stripProgress left %q", s)
			}
		})
	}
}

func TestParseProgressAmongMessages(t *testing.T) {
	tail := "frame=10\nfps=5.0\nbitrate=N/A\ntotal_size=N/A\nout_time_us=-9223372036854775807\nspeed=N/A\nprogress=continue\n" +
		"[flv @ 0x55] Failed to update header with correct duration.\r\n" +
		"frame=250\nfps=25.00\nstream_0_0_q=-1.0\nbitrate= 512.3kbits/s\ntotal_size=640000\nout_time_us=10000000\n" +
		"[rtmp @ 0x1] warning in the middle\nout_time_ms=10000000\nout_time=00:00:10.000000\ndup_frames=1\ndrop_frames=2\nspeed=1.01x\nprogress=continue\n" +
		"frame=260\nfps=25"
	p, ok := parseProgress(tail)
	if !ok || p.Frame != 250 || p.FPS != 25 || p.Bitrate != 512300 || p.TotalSize != 640000 || p.OutTimeMS != 10000 ||
		p.DupFrames != 1 || p.DropFrames != 2 || p.Speed != 1.01 {
		t.Fatalf("parse = %+v, %v", p, ok)
	}
	if p, ok := parseProgress("frame=1\nfps=0.00\nbitrate=N/A\ntotal_size=N/A\nout_time_us=-9223372036854775807\nspeed=N/A\nprogress=continue\n"); !ok || p.OutTimeMS != 0 || p.Bitrate != 0 {
		t.Fatalf("first block = %+v, %v", p, ok)
	}
	if _, ok := parseProgress("out_time_us=5\nspeed=1x\nprogress=continue\n"); ok {
		t.Fatal("a block cut at its start parsed")
	}
	if _, ok := parseProgress("[tcp] Connection refused\n"); ok {
		t.Fatal("no block parsed")
	}
	if got := stripProgress("a\nframe=1\nprogress=end\nb: Connection refused\n"); got != "a\nb: Connection refused\n" {
		t.Fatalf("stripProgress = %q", got)
	}
	if got := uptime(time.Time{}, time.Unix(100, 0), time.Unix(130, 0)); got != 30*time.Second {
		t.Fatalf("uptime = %v", got)
	}
	if progressPeriod(0) != 0 || progressPeriod(1000) != wire.ProgressEvery || progressPeriod(60000) != time.Minute {
		t.Fatalf("progressPeriod: %v %v %v", progressPeriod(0), progressPeriod(1000), progressPeriod(60000))
	}
	if args := withProgress("sleep", []string{"5"}); len(args) != 1 {
		t.Fatalf("withProgress(sleep) = %q", args)
	}
	if args := withProgress("ffmpeg", []string{"-progress", "x"}); len(args) != 2 {
		t.Fatalf("withProgress kept the task's own -progress? %q", args)
	}
}
