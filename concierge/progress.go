package concierge

import (
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/concierge/wire"
)

// Progress: every ffmpeg task runs with progressArgs, so ffmpeg writes a
// block of key=value lines to its standard output every
// wire.ProgressEvery, ending in "progress=continue" (or "progress=end"):
//
//	frame=250
//	fps=25.00
//	bitrate= 512.3kbits/s
//	total_size=640000
//	out_time_us=10000000
//	dup_frames=0
//	drop_frames=0
//	speed=1.00x
//	progress=continue
//
// supervisord writes standard output and error to the task's log, which
// it rotates (so the blocks cost no unbounded file), and the blocks keep
// the log of a healthy task from being empty: with -loglevel warning
// ffmpeg writes nothing else while all is well. When the control plane
// asks for progress (wire.Assignment.ProgressMS), the concierge reads the
// log's tail at that period and reports its last complete block
// (parseProgress). Failure reports leave the blocks out (stripProgress).

// progressArgs asks ffmpeg for a progress block on standard output every
// wire.ProgressEvery. They are global options, put first.
var progressArgs = []string{"-progress", "pipe:1", "-stats_period", strconv.FormatFloat(wire.ProgressEvery.Seconds(), 'f', -1, 64)}

// withProgress returns the arguments of command with progressArgs in
// front, when command is ffmpeg and the arguments ask for no progress of
// their own.
func withProgress(command string, args []string) []string {
	if !strings.HasPrefix(filepath.Base(command), "ffmpeg") || slices.Contains(args, "-progress") {
		return args
	}
	return append(slices.Clone(progressArgs), args...)
}

// progressPeriod is how often to report progress when the assignment asks
// every ms milliseconds: never (0) or at least wire.ProgressEvery, when
// ffmpeg writes a new block.
func progressPeriod(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return max(time.Duration(ms)*time.Millisecond, wire.ProgressEvery)
}

// progressTailBytes is how much of a log's end is read for its last
// progress block (a block is about 250 bytes; warnings may come between).
const progressTailBytes = 4096

// progressKeys are the keys of ffmpeg's progress blocks (stream_N_M_q is
// matched apart).
var progressKeys = map[string]bool{
	"frame": true, "fps": true, "bitrate": true, "total_size": true, "out_time_us": true, "out_time_ms": true,
	"out_time": true, "dup_frames": true, "drop_frames": true, "speed": true, "progress": true,
}

// progressLine reports whether line is a line of a progress block.
func progressLine(line string) bool {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return false
	}
	return progressKeys[k] || (strings.HasPrefix(k, "stream_") && strings.HasSuffix(k, "_q"))
}

// parseProgress reads the last complete progress block in a log's tail.
// Lines that are no part of a block (ffmpeg's warnings on standard error)
// are skipped; ok is false when the tail holds no complete block.
func parseProgress(tail string) (p wire.Progress, ok bool) {
	lines := strings.Split(strings.ReplaceAll(tail, "\r", "\n"), "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "progress=") {
			end = i
			break
		}
	}
	if end < 0 {
		return p, false
	}
	start := -1 // the line after the previous block's end
	for i := end - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "progress=") {
			start = i + 1
			break
		}
	}
	if start < 0 {
		start = 0 // the tail may begin inside the block: checked below
	}
	seen := map[string]bool{}
	for _, line := range lines[start:end] {
		k, v, found := strings.Cut(line, "=")
		if !found || !progressLine(line) {
			continue
		}
		v = strings.TrimSpace(v)
		seen[k] = true
		switch k {
		case "frame":
			p.Frame, _ = strconv.ParseInt(v, 10, 64)
		case "fps":
			p.FPS, _ = strconv.ParseFloat(v, 64)
		case "bitrate":
			p.Bitrate = parseBitrate(v)
		case "total_size":
			p.TotalSize, _ = strconv.ParseInt(v, 10, 64)
		case "out_time_us":
			us, _ := strconv.ParseInt(v, 10, 64)
			p.OutTimeMS = us / 1000
		case "dup_frames":
			p.DupFrames, _ = strconv.ParseInt(v, 10, 64)
		case "drop_frames":
			p.DropFrames, _ = strconv.ParseInt(v, 10, 64)
		case "speed":
			p.Speed, _ = strconv.ParseFloat(strings.TrimSuffix(v, "x"), 64)
		}
	}
	// A block always has these: without them the tail began mid-block.
	if !seen["out_time_us"] || !seen["total_size"] || !seen["speed"] {
		return wire.Progress{}, false
	}
	if p.OutTimeMS < 0 { // ffmpeg says a negative time before the first packet
		p.OutTimeMS = 0
	}
	return p, true
}

// parseBitrate reads ffmpeg's "1234.5kbits/s" as bits per second (0 for N/A).
func parseBitrate(v string) int64 {
	num, ok := strings.CutSuffix(v, "kbits/s")
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f < 0 {
		return 0
	}
	return int64(math.Round(f * 1000))
}

// stripProgress removes progress blocks from a log's tail: a failure
// report (its reason, its log tail) is about ffmpeg's messages.
func stripProgress(tail string) string {
	if !strings.Contains(tail, "progress=") {
		return tail
	}
	lines := strings.SplitAfter(tail, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !progressLine(strings.TrimRight(l, "\r\n")) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// uptime is how long a process started at start has run (supervisord's
// start time; the concierge's own record when supervisord has none).
func uptime(start, fallback, now time.Time) time.Duration {
	if start.IsZero() || start.After(now) {
		start = fallback
	}
	if start.IsZero() {
		return 0
	}
	return now.Sub(start)
}
