package compile

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/portier/portier/internal/taskcost"
)

// The HLS task: ffmpeg reads the stream from the relay and PUTs a
// multi-variant ladder to the HLS origin under /hls/s/STREAMID/:
// master.m3u8, RENDITION/index.m3u8 and RENDITION/SEQUENCE.ts.
//
// What makes it safe across restarts and failovers (ffmpeg 5.1):
//   - -hls_start_number_source epoch: the first media sequence number of a
//     run is the wall clock in seconds. A run adds at most one number per
//     segment (at least 1 s), so it never reaches the clock, and the next run
//     starts above every number the last one used: the sequence never
//     decreases (RFC 8216 6.2.1), given hosts whose clocks agree (NTP).
//   - segment names are their sequence numbers, so a name is never reused
//     for other bytes;
//   - discont_start marks the first segment of a run EXT-X-DISCONTINUITY;
//     omit_endlist keeps a stopped run from ending the stream for players
//     (its successor continues it);
//   - delete_segments, with a threshold that keeps a segment stored for a
//     whole playlist duration after it leaves the playlist (RFC 8216 6.2.2);
//     the origin accepts DELETE with the task's credential. A run cannot
//     delete its predecessor's segments (it does not know them): the
//     origin's retention has to remove those.
//   - no temp_file: over HTTP ffmpeg would PUT a ".tmp" and never rename it.
//
// The ladder: every encoded rendition gets a key frame at every segment
// boundary (force_key_frames on the output clock, no scene-cut key frames),
// so renditions switch cleanly; with a frame rate the GOP is fixed to one
// segment too.

// hlsListSize is the number of segments in a media playlist.
const hlsListSize = 6

// encodeWork is the encoding work that costs taskcost.Encode (one core):
// 640x360 at 30 fps.
const encodeWork = 640 * 360 * 30

// assumedFPS is the frame rate cost assumes when a rendition keeps the source's.
const assumedFPS = 30

// HLSPath is the path under the HLS origin of stream id's files.
func HLSPath(streamID int64) string { return "/hls/s/" + strconv.FormatInt(streamID, 10) }

// HLSCost is the placement cost of a checked ladder (taskcost units): its
// encoding work (pixels × frame rate of each encoded rendition) at one
// core (taskcost.Encode) per 640x360 at 30 fps, rounded up to the unit; a
// copy or audio-only rendition costs nothing more, and a ladder costs at
// least a copy (taskcost.Copy).
func HLSCost(rs []Rendition) int {
	work := 0.0
	for _, r := range rs {
		if r.Kind != KindVideo {
			continue
		}
		fps := r.FPS
		if fps == 0 {
			fps = assumedFPS
		}
		work += float64(r.Width) * float64(r.Height) * float64(fps)
	}
	return max(taskcost.Copy, int(math.Ceil(work*taskcost.Encode/encodeWork-1e-9)))
}

func hls(cfg TaskConfigInput, st StreamState, env Env) (Description, error) {
	if _, err := parseURL("HLS origin", env.HLSOriginURL, "http", "https"); err != nil {
		return Description{}, err
	}
	if st.ID <= 0 {
		return Description{}, fmt.Errorf("%w: an HLS task needs the stream's id", ErrInvalid)
	}
	rs, seg, err := CheckLadder(cfg.Renditions, cfg.SegmentSeconds)
	if err != nil {
		return Description{}, err
	}
	if rs, err = forTracks(rs, st.Tracks); err != nil {
		return Description{}, err
	}
	audio := !st.Tracks.Known || st.Tracks.Audio
	base := strings.TrimRight(env.HLSOriginURL, "/") + HLSPath(st.ID)
	in := relayInput(env, st, "hls")
	args := commonInput(in)
	segStr := strconv.Itoa(seg)

	// One decode, split once per encoded rendition.
	var filters []string
	enc := 0
	for _, r := range rs {
		if r.Kind != KindVideo {
			continue
		}
		f := fmt.Sprintf("[s%d]", enc)
		if r.FPS > 0 {
			f += "fps=" + strconv.Itoa(r.FPS) + ","
		}
		filters = append(filters, fmt.Sprintf("%sscale=w=%d:h=%d,format=yuv420p[v%d]", f, r.Width, r.Height, enc))
		enc++
	}
	if enc > 0 {
		var split strings.Builder
		fmt.Fprintf(&split, "[0:v]split=%d", enc)
		for i := range enc {
			fmt.Fprintf(&split, "[s%d]", i)
		}
		args = append(args, "-filter_complex", split.String()+";"+strings.Join(filters, ";"))
	}

	// Video streams first, in ladder order (v:N counts them), then one
	// audio stream per rendition (a:N).
	var varMap []string
	vi, enc := 0, 0
	for _, r := range rs {
		v := strconv.Itoa(vi)
		switch r.Kind {
		case KindVideo:
			vb := strconv.Itoa(r.VideoBitrate) + "k"
			args = append(args, "-map", "[v"+strconv.Itoa(enc)+"]",
				"-c:v:"+v, "libx264", "-preset:v:"+v, "veryfast",
				"-b:v:"+v, vb, "-maxrate:v:"+v, vb, "-bufsize:v:"+v, strconv.Itoa(2*r.VideoBitrate)+"k",
				"-sc_threshold:v:"+v, "0", "-force_key_frames:v:"+v, "expr:gte(t,n_forced*"+segStr+")")
			if r.FPS > 0 {
				gop := strconv.Itoa(r.FPS * seg)
				args = append(args, "-g:v:"+v, gop, "-keyint_min:v:"+v, gop)
			}
			enc++
		case KindCopy:
			args = append(args, "-map", "0:v:0", "-c:v:"+v, "copy")
		default:
			continue
		}
		vi++
	}
	vi = 0
	for ai, r := range rs {
		if !audio { // video only: no audio stream, none in the variants
			varMap = append(varMap, fmt.Sprintf("v:%d,name:%s", vi, r.Name))
			vi++
			continue
		}
		a := strconv.Itoa(ai)
		args = append(args, "-map", "0:a:0")
		if r.Kind == KindCopy {
			args = append(args, "-c:a:"+a, "copy")
		} else {
			ab := r.AudioBitrate
			if ab == 0 {
				ab = DefaultAudioBitrate
			}
			args = append(args, "-c:a:"+a, "aac", "-b:a:"+a, strconv.Itoa(ab)+"k")
		}
		if r.Kind == KindAudio {
			varMap = append(varMap, fmt.Sprintf("a:%d,name:%s", ai, r.Name))
			continue
		}
		varMap = append(varMap, fmt.Sprintf("v:%d,a:%d,name:%s", vi, ai, r.Name))
		vi++
	}
	args = append(args,
		"-f", "hls", "-hls_time", segStr, "-hls_list_size", strconv.Itoa(hlsListSize),
		"-hls_delete_threshold", strconv.Itoa(hlsListSize+1),
		// Microseconds: a runner's first number is above any number an
		// earlier runner of the task can have reached. With seconds and
		// 1 s segments, the runner a failover starts numbered the very
		// segments the old one, not yet fenced, was still uploading.
		"-hls_start_number_source", "epoch_us",
		"-hls_flags", "independent_segments+program_date_time+discont_start+omit_endlist+delete_segments",
		"-hls_segment_type", "mpegts",
		"-master_pl_name", "master.m3u8", "-var_stream_map", strings.Join(varMap, " "),
		"-method", "PUT", "-http_persistent", "1",
		// No trailing CRLF: the concierge cannot pass a control
		// character through supervisord's config (QuoteCommand refuses
		// it), and ffmpeg's http protocol adds the missing CRLF itself.
		"-headers", "Authorization: Bearer "+CredentialPlaceholder)
	credArg := len(args) - 1
	playlist := base + "/%v/index.m3u8"
	args = append(args, "-hls_segment_filename", base+"/%v/%d.ts", playlist)
	return Description{
		Args: args, Input: in, Outputs: []string{base + "/master.m3u8", playlist}, Cost: HLSCost(rs),
		RelayArgs: []int{inputArg(args)}, CredentialArg: credArg,
	}, nil
}

// forTracks keeps the renditions the stream's tracks can feed: without a
// video track no video or copy rendition, without an audio track no audio
// rendition (the others then carry video only). A ladder left with
// nothing is refused. Unknown tracks keep the whole ladder.
func forTracks(rs []Rendition, tr Tracks) ([]Rendition, error) {
	if !tr.Known {
		return rs, nil
	}
	out := make([]Rendition, 0, len(rs))
	for _, r := range rs {
		if (r.Kind == KindAudio && !tr.Audio) || (r.Kind != KindAudio && !tr.Video) {
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		what := "no video track"
		if !tr.Video && !tr.Audio {
			what = "no track"
		} else if !tr.Audio {
			what = "no audio track"
		}
		return nil, fmt.Errorf("%w: the stream has %s for any rendition of the ladder", ErrInvalid, what)
	}
	return out, nil
}
