package peers

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// PlayOpts configures a long-running test player.
type PlayOpts struct {
	// RTSPTransport is "tcp" (default) or "udp" for rtsp:// URLs. ffmpeg
	// given one transport does not fall back to another, so a "udp"
	// player that decodes frames proves delivery over UDP.
	RTSPTransport string
}

// PlayArgs returns ffmpeg's arguments for Play (without "ffmpeg"): decode
// url to the null muxer, reporting progress on stdout.
func PlayArgs(url string, o PlayOpts) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning",
		"-progress", "pipe:1", "-stats_period", "0.25"}
	if strings.HasPrefix(url, "rtsp://") {
		tr := o.RTSPTransport
		if tr == "" {
			tr = "tcp"
		}
		// -timeout: socket I/O timeout in microseconds (15 s).
		args = append(args, "-rtsp_transport", tr, "-timeout", "15000000")
	} else {
		args = append(args, "-rw_timeout", "15000000")
	}
	return append(args, "-i", url, "-f", "null", "-")
}

// Play starts ffmpeg playing url until ctx ends, Stop, or the test ends.
// Proc.Progress counts the frames it decoded; a player the server ended
// shows as an early exit (Proc.Exited).
func Play(t testing.TB, ctx context.Context, url string, opts PlayOpts) *Proc {
	t.Helper()
	bin := RequireTool(t, "ffmpeg")
	cmd := exec.CommandContext(ctx, bin, PlayArgs(url, opts)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	p, err := startProc(t, "ffmpeg-play-"+strings.SplitN(url, ":", 2)[0], cmd, true)
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	return p
}
