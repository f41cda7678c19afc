package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PublishOpts configures a test publisher. The zero value publishes
// 640x360 at 25 fps, H.264 (libx264 ultrafast, zerolatency, GOP 25, no
// B-frames) and AAC, in FLV (for rtmp:// URLs), until stopped.
type PublishOpts struct {
	// Format is the output format: "flv" (default) or "rtsp". RTSP URLs
	// default to "rtsp".
	Format string
	// RTSPTransport is "tcp" (default) or "udp" for Format "rtsp".
	RTSPTransport string
	// Size is WxH of the test picture; default "640x360".
	Size string
	// FrameRate in frames per second; default 25.
	FrameRate int
	// GOP is the keyframe interval in frames; default FrameRate (1 s).
	GOP int
	// VideoBitrate in bits/s; 0 leaves x264's default rate control. When
	// set, the encoder runs constant bitrate (maxrate = bitrate, bufsize =
	// bitrate/2, nal-hrd=cbr with filler), so the stream's rate is known.
	VideoBitrate int
	// AudioBitrate in bits/s; default 64000.
	AudioBitrate int
	// Duration stops the source after this much media time; 0 runs until
	// Stop or the test ends.
	Duration time.Duration
	// BFrames turns on B-frames (-bf 2), which zerolatency turns off.
	BFrames bool
	// NoAudio publishes video only.
	NoAudio bool
	// ExtraOutputArgs go right before the output URL.
	ExtraOutputArgs []string
}

// PublishArgs returns ffmpeg's arguments for Publish (without "ffmpeg").
func PublishArgs(url string, o PublishOpts) []string {
	size := o.Size
	if size == "" {
		size = "640x360"
	}
	fps := o.FrameRate
	if fps <= 0 {
		fps = 25
	}
	gop := o.GOP
	if gop <= 0 {
		gop = fps
	}
	ab := o.AudioBitrate
	if ab <= 0 {
		ab = 64000
	}
	format := o.Format
	if format == "" {
		format = "flv"
		if strings.HasPrefix(url, "rtsp://") {
			format = "rtsp"
		}
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning",
		"-progress", "pipe:1", "-stats_period", "0.25",
		"-re", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", size, fps)}
	if !o.NoAudio {
		args = append(args, "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")
	}
	if o.Duration > 0 {
		args = append(args, "-t", strconv.FormatFloat(o.Duration.Seconds(), 'f', 3, 64))
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-pix_fmt", "yuv420p", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop))
	if o.BFrames {
		args = append(args, "-bf", "2")
	} else {
		args = append(args, "-bf", "0")
	}
	if o.VideoBitrate > 0 {
		vb := strconv.Itoa(o.VideoBitrate)
		args = append(args, "-b:v", vb, "-minrate", vb, "-maxrate", vb,
			"-bufsize", strconv.Itoa(o.VideoBitrate/2), "-x264-params", "nal-hrd=cbr")
	}
	if !o.NoAudio {
		args = append(args, "-c:a", "aac", "-b:a", strconv.Itoa(ab), "-ar", "44100", "-ac", "2")
	}
	args = append(args, "-f", format)
	if format == "rtsp" {
		tr := o.RTSPTransport
		if tr == "" {
			tr = "tcp"
		}
		args = append(args, "-rtsp_transport", tr)
	}
	args = append(args, o.ExtraOutputArgs...)
	return append(args, url)
}

// Publish starts ffmpeg publishing a lavfi test source to url. The process
// reports progress (Proc.Progress, WaitFrames, OutputBitrate) and is stopped
// when ctx ends or the test finishes. It fails the test only if ffmpeg cannot
// be started; a refused publish shows as an early exit (Proc.Exited).
func Publish(t testing.TB, ctx context.Context, url string, opts PublishOpts) *Proc {
	t.Helper()
	bin := RequireTool(t, "ffmpeg")
	cmd := exec.CommandContext(ctx, bin, PublishArgs(url, opts)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	p, err := startProc(t, "ffmpeg-publish", cmd, true)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return p
}

// ProbeStream is one stream reported by ffprobe.
type ProbeStream struct {
	Index      int    `json:"index"`
	CodecType  string `json:"codec_type"` // "video", "audio", "data"
	CodecName  string `json:"codec_name"` // "h264", "aac", …
	Profile    string `json:"profile"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
}

// ProbeResult is what ffprobe found in a stream.
type ProbeResult struct {
	Streams []ProbeStream `json:"streams"`
}

// Codecs lists the codec names in stream order.
func (r ProbeResult) Codecs() []string {
	out := make([]string, 0, len(r.Streams))
	for _, s := range r.Streams {
		out = append(out, s.CodecName)
	}
	return out
}

// HasCodec reports whether any stream uses codec name (e.g. "h264").
func (r ProbeResult) HasCodec(name string) bool {
	for _, s := range r.Streams {
		if s.CodecName == name {
			return true
		}
	}
	return false
}

// Video returns the first video stream.
func (r ProbeResult) Video() (ProbeStream, bool) {
	for _, s := range r.Streams {
		if s.CodecType == "video" {
			return s, true
		}
	}
	return ProbeStream{}, false
}

// DefaultProbeTimeout bounds Probe and PlayFrames when ctx has no deadline.
const DefaultProbeTimeout = 20 * time.Second

// Probe runs `ffprobe -show_streams -of json` on url (RTSP over TCP) and
// returns the streams it found. It is bounded by ctx, or by
// DefaultProbeTimeout if ctx has no deadline. The error includes ffprobe's
// last stderr lines.
func Probe(t testing.TB, ctx context.Context, url string) (ProbeResult, error) {
	t.Helper()
	bin := RequireTool(t, "ffprobe")
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultProbeTimeout)
		defer cancel()
	}
	args := []string{"-hide_banner", "-v", "error", "-rw_timeout", "15000000"}
	if strings.HasPrefix(url, "rtsp://") {
		args = []string{"-hide_banner", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "15000000"}
	}
	args = append(args, "-show_streams", "-of", "json", url)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = StopGrace
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	out, err := cmd.Output()
	if err != nil {
		return ProbeResult{}, fmt.Errorf("ffprobe %s: %w: %s", redact(url), err, lastLines(stderr.String(), 5))
	}
	var r ProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		return ProbeResult{}, fmt.Errorf("ffprobe %s: parse json: %w", redact(url), err)
	}
	if len(r.Streams) == 0 {
		return r, fmt.Errorf("ffprobe %s: no streams: %s", redact(url), lastLines(stderr.String(), 5))
	}
	return r, nil
}

// ProbeUntil retries Probe until it finds a video stream or ctx ends (a
// server may accept a publish before the stream is readable: MediaMTX reads
// about two seconds of an RTMP publish before it serves it). Each attempt is
// bounded by DefaultProbeTimeout; ctx should carry the overall deadline.
func ProbeUntil(t testing.TB, ctx context.Context, url string) (ProbeResult, error) {
	t.Helper()
	var lastErr error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, DefaultProbeTimeout)
		r, err := Probe(t, actx, url)
		cancel()
		if err == nil {
			if _, ok := r.Video(); ok {
				return r, nil
			}
			err = fmt.Errorf("ffprobe %s: no video stream in %v", redact(url), r.Codecs())
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ProbeResult{}, fmt.Errorf("after %d attempts: %w", attempt+1, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// PlayFrames plays url with `ffmpeg -i url -t dur -f null -` and returns
// how many video frames it decoded (from -progress output). It is bounded by
// ctx, or by dur + DefaultProbeTimeout if ctx has no deadline.
func PlayFrames(ctx context.Context, url string, dur time.Duration) (int, error) {
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return 0, fmt.Errorf("play frames: %w (install the Debian package ffmpeg)", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dur+DefaultProbeTimeout)
		defer cancel()
	}
	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1"}
	if strings.HasPrefix(url, "rtsp://") {
		args = append(args, "-rtsp_transport", "tcp", "-timeout", "15000000")
	} else {
		args = append(args, "-rw_timeout", "15000000")
	}
	args = append(args, "-i", url, "-t", strconv.FormatFloat(dur.Seconds(), 'f', 3, 64), "-f", "null", "-")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = StopGrace
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	out, runErr := cmd.Output()
	frames := -1
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "frame="); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				frames = n
			}
		}
	}
	if runErr != nil {
		return max(frames, 0), fmt.Errorf("play %s: %w: %s", redact(url), runErr, lastLines(stderr.String(), 5))
	}
	if frames < 0 {
		return 0, fmt.Errorf("play %s: no progress output: %s", redact(url), lastLines(stderr.String(), 5))
	}
	return frames, nil
}

// limitedWriter keeps at most n bytes and drops the rest.
type limitedWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.n -= k
		if _, err := l.w.Write(b[:k]); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// redact hides query strings (stream keys, tokens) in URLs used in errors.
func redact(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?REDACTED"
	}
	return url
}
