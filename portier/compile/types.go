package compile

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portier/portier/internal/taskcost"
)

func restream(cfg TaskConfigInput, st StreamState, env Env) (Description, error) {
	u, err := parseURL("target", cfg.Target, "rtmp", "rtmps", "srt")
	if err != nil {
		return Description{}, err
	}
	if err := checkPolicy(env, "target", u); err != nil {
		return Description{}, err
	}
	if cfg.Key != "" {
		if err := checkKey(cfg.Key); err != nil {
			return Description{}, err
		}
	}
	format, err := RestreamFormat(u.Scheme, cfg.Format)
	if err != nil {
		return Description{}, err
	}
	out := cfg.Target
	if cfg.Key != "" {
		if u.Scheme == "srt" {
			q := u.Query()
			q.Set("streamid", cfg.Key)
			u.RawQuery = q.Encode()
			out = u.String()
		} else {
			out = strings.TrimRight(cfg.Target, "/") + "/" + cfg.Key
		}
	}
	in := relayInput(env, st, "restream")
	args := append(commonInput(in), "-c", "copy", "-f", format, out)
	return Description{Args: args, Input: in, Outputs: []string{out}, Cost: taskcost.Copy, RelayArgs: []int{inputArg(args)}}, nil
}

// RecordingDir is where the record tasks of stream id write its segments,
// and where the control plane lists them: RECORD_DIR/stream.ID. The
// directory is named by the stream's id, never by its name, so that a new
// stream that reuses a deleted stream's name (perhaps of another owner)
// never sees the old stream's files; ids are never reused (AUTOINCREMENT,
// BIGSERIAL). The '.' keeps it apart from the APP/NAME directories that
// earlier versions wrote (names never contain a dot).
func RecordingDir(recordDir string, id int64) string {
	return filepath.Join(recordDir, "stream."+strconv.FormatInt(id, 10))
}

// checkPolicy applies env.CheckURL (if any) to a task URL.
func checkPolicy(env Env, field string, u *url.URL) error {
	if env.CheckURL == nil {
		return nil
	}
	if err := env.CheckURL(field, u); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func record(cfg TaskConfigInput, st StreamState, env Env) (Description, error) {
	if env.RecordDir == "" || !filepath.IsAbs(env.RecordDir) {
		return Description{}, fmt.Errorf("%w: the record directory must be an absolute path (got %q)", ErrInvalid, env.RecordDir)
	}
	seg := cfg.SegmentSeconds
	if seg == 0 {
		seg = 60
	}
	if seg < 1 || seg > 86400 {
		return Description{}, fmt.Errorf("%w: segment_seconds %d: want 1..86400", ErrInvalid, seg)
	}
	var muxer, ext string
	switch cfg.Format {
	case "", "ts", "mpegts":
		muxer, ext = "mpegts", "ts"
	case "mp4":
		muxer, ext = "mp4", "mp4"
	case "flv":
		muxer, ext = "flv", "flv"
	default:
		return Description{}, fmt.Errorf("%w: record format %q: want mp4, flv or ts", ErrInvalid, cfg.Format)
	}
	var muxOpts []string
	if muxer == "mp4" {
		// Fragmented MP4, flushed per packet: every segment plays without a
		// trailer, so a killed or interrupted recorder leaves no file
		// without an index (a plain MP4 needs its moov written at the end).
		muxOpts = []string{"-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1"}
	}
	if st.ID <= 0 {
		return Description{}, fmt.Errorf("%w: a record task needs the stream's id", ErrInvalid)
	}
	dir := RecordingDir(env.RecordDir, st.ID)
	out := filepath.Join(dir, "%Y%m%d-%H%M%S."+ext)
	in := relayInput(env, st, "record")
	args := append(commonInput(in), "-c", "copy", "-map", "0:v?", "-map", "0:a?",
		"-f", "segment", "-segment_time", strconv.Itoa(seg), "-segment_format", muxer)
	args = append(args, muxOpts...)
	args = append(args, "-strftime", "1", "-reset_timestamps", "1", out)
	return Description{Args: args, Input: in, Outputs: []string{out}, Dirs: []string{dir}, Cost: taskcost.Copy, RelayArgs: []int{inputArg(args)}}, nil
}

func pull(cfg TaskConfigInput, st StreamState, env Env) (Description, error) {
	src, err := parseURL("source", cfg.Source, "rtsp", "rtsps", "rtmp", "rtmps", "srt", "http", "https")
	if err != nil {
		return Description{}, err
	}
	if err := checkPolicy(env, "source", src); err != nil {
		return Description{}, err
	}
	if (src.Scheme == "http" || src.Scheme == "https") && !strings.HasSuffix(src.Path, ".m3u8") {
		return Description{}, fmt.Errorf("%w: an http(s) source must be an HLS playlist (.m3u8)", ErrInvalid)
	}
	if st.Key == "" {
		return Description{}, fmt.Errorf("%w: the stream has no publish key", ErrInvalid)
	}
	out := relayURL(env, st) + "?key=" + url.QueryEscape(st.Key)
	args := append(commonInput(cfg.Source), "-c", "copy", "-f", "flv", out)
	d := Description{Args: args, Input: cfg.Source, Outputs: []string{out}, Cost: taskcost.Copy, RelayArgs: []int{len(args) - 1}}
	if src.Scheme == "rtsp" || src.Scheme == "rtsps" {
		d.RelayPull = &RelayPull{Source: cfg.Source}
	}
	return d, nil
}
