package compile

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The validation rules that the API, the web UI (through models) and the
// compiler share. They live here, in the package that turns names and
// numbers into paths and ffmpeg arguments, so that nothing the API accepts
// is refused later when a task is compiled. models imports them; the rules'
// texts are the only copies of their wording.

// NameRule says what an application, stream, task config or rendition name
// may look like, in the words every refusal uses.
const NameRule = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"

// nameRE is NameRule: names end up in URLs, file paths and ffmpeg
// arguments, where a leading '-' reads as an option and '.' as a path step.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidName reports whether n follows NameRule.
func ValidName(n string) bool { return nameRE.MatchString(n) }

// Limits of an HLS rendition.
const (
	MinWidth, MaxWidth               = 16, 7680
	MinHeight, MaxHeight             = 16, 4320
	MinVideoBitrate, MaxVideoBitrate = 50, 100000 // kbit/s
	// An audio bitrate of 0 means DefaultAudioBitrate.
	MinAudioBitrate, MaxAudioBitrate = 16, 512 // kbit/s (AAC)
	DefaultAudioBitrate              = 128
)

// RuleError is a broken rule: the field (as the API names it) and what is
// wanted.
type RuleError struct {
	Field   string
	Message string
}

func (e *RuleError) Error() string { return e.Field + " " + e.Message }

// Unwrap makes every RuleError an ErrInvalid.
func (e *RuleError) Unwrap() error { return ErrInvalid }

func ruleErr(field, format string, args ...any) *RuleError {
	return &RuleError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Kinds of rendition.
const (
	KindVideo = "video" // encoded with libx264 at the rendition's size (the default)
	KindCopy  = "copy"  // the source's video and audio as they are: no size, no bitrate
	KindAudio = "audio" // AAC audio only
)

// Limits of an HLS ladder.
const (
	MaxRenditions                        = 8
	MinSegmentSeconds, MaxSegmentSeconds = 1, 30
	DefaultSegmentSeconds                = 2
	MaxFPS                               = 120
)

// Presets are the renditions a ladder can name instead of spelling out
// (rendition "preset": "720p"). Fields given next to a preset override it.
var Presets = map[string]Rendition{
	"1080p": {Kind: KindVideo, Width: 1920, Height: 1080, VideoBitrate: 5000, AudioBitrate: 128},
	"720p":  {Kind: KindVideo, Width: 1280, Height: 720, VideoBitrate: 2800, AudioBitrate: 128},
	"480p":  {Kind: KindVideo, Width: 854, Height: 480, VideoBitrate: 1400, AudioBitrate: 96},
	"360p":  {Kind: KindVideo, Width: 640, Height: 360, VideoBitrate: 800, AudioBitrate: 96},
	"audio": {Kind: KindAudio, AudioBitrate: 128},
	"copy":  {Kind: KindCopy},
}

// PresetNames lists Presets in the order a form offers them.
var PresetNames = []string{"1080p", "720p", "480p", "360p", "audio", "copy"}

// ExpandRendition fills the fields of r that are zero from its preset (if
// any), names it after the preset when it has no name and sets its kind
// (KindVideo when empty). It refuses an unknown preset or a kind that
// contradicts the preset's.
func ExpandRendition(r Rendition) (Rendition, error) {
	if r.Preset != "" {
		p, ok := Presets[r.Preset]
		if !ok {
			return r, ruleErr("preset", "%q: must be one of %s", r.Preset, strings.Join(PresetNames, ", "))
		}
		if r.Kind != "" && r.Kind != p.Kind {
			return r, ruleErr("kind", "%q contradicts preset %q (a %s rendition)", r.Kind, r.Preset, p.Kind)
		}
		if r.Name == "" {
			r.Name = r.Preset
		}
		r.Kind = p.Kind
		if r.Width == 0 && r.Height == 0 {
			r.Width, r.Height = p.Width, p.Height
		}
		if r.VideoBitrate == 0 {
			r.VideoBitrate = p.VideoBitrate
		}
		if r.AudioBitrate == 0 {
			r.AudioBitrate = p.AudioBitrate
		}
	}
	if r.Kind == "" {
		r.Kind = KindVideo
	}
	return r, nil
}

// CheckRendition checks one expanded rendition (ExpandRendition) against
// the limits above. Fields are named as in the API (width, height,
// video_bitrate_kbps, ...).
func CheckRendition(r Rendition) error {
	if !ValidName(r.Name) {
		return ruleErr("name", "%q: must be %s", r.Name, NameRule)
	}
	if r.AudioBitrate != 0 && (r.AudioBitrate < MinAudioBitrate || r.AudioBitrate > MaxAudioBitrate) {
		return ruleErr("audio_bitrate_kbps", "must be 0 (for %d) or between %d and %d", DefaultAudioBitrate, MinAudioBitrate, MaxAudioBitrate)
	}
	switch r.Kind {
	case KindVideo, "":
	case KindCopy, KindAudio:
		what := "a copy rendition keeps the source's"
		if r.Kind == KindAudio {
			what = "an audio rendition has no"
		}
		switch {
		case r.Width != 0:
			return ruleErr("width", "must be 0: %s video size", what)
		case r.Height != 0:
			return ruleErr("height", "must be 0: %s video size", what)
		case r.FPS != 0:
			return ruleErr("fps", "must be 0: %s frame rate", what)
		case r.VideoBitrate != 0:
			return ruleErr("video_bitrate_kbps", "must be 0: %s video bitrate", what)
		case r.Kind == KindCopy && r.AudioBitrate != 0:
			return ruleErr("audio_bitrate_kbps", "must be 0: a copy rendition keeps the source's audio")
		}
		return nil
	default:
		return ruleErr("kind", "%q: must be %s, %s or %s", r.Kind, KindVideo, KindCopy, KindAudio)
	}
	if r.Width < MinWidth || r.Width > MaxWidth || r.Width%2 != 0 {
		return ruleErr("width", "must be an even number between %d and %d", MinWidth, MaxWidth)
	}
	if r.Height < MinHeight || r.Height > MaxHeight || r.Height%2 != 0 {
		return ruleErr("height", "must be an even number between %d and %d", MinHeight, MaxHeight)
	}
	if r.FPS < 0 || r.FPS > MaxFPS {
		return ruleErr("fps", "must be 0 (the source's) or between 1 and %d", MaxFPS)
	}
	if r.VideoBitrate < MinVideoBitrate || r.VideoBitrate > MaxVideoBitrate {
		return ruleErr("video_bitrate_kbps", "must be between %d and %d", MinVideoBitrate, MaxVideoBitrate)
	}
	return nil
}

// CheckLadder expands (ExpandRendition) and checks a whole ladder and its
// segment length (0 for DefaultSegmentSeconds), and returns both as the
// compiler uses them. A RuleError's field names the rendition
// ("renditions[1].width"). The API, the UI and the compiler all call it.
func CheckLadder(rs []Rendition, segmentSeconds int) ([]Rendition, int, error) {
	if len(rs) == 0 {
		return nil, 0, ruleErr("renditions", "needs at least one rendition")
	}
	if len(rs) > MaxRenditions {
		return nil, 0, ruleErr("renditions", "at most %d renditions (got %d)", MaxRenditions, len(rs))
	}
	if segmentSeconds == 0 {
		segmentSeconds = DefaultSegmentSeconds
	}
	if segmentSeconds < MinSegmentSeconds || segmentSeconds > MaxSegmentSeconds {
		return nil, 0, ruleErr("segment_seconds", "%d: must be between %d and %d", segmentSeconds, MinSegmentSeconds, MaxSegmentSeconds)
	}
	out := make([]Rendition, len(rs))
	names := map[string]bool{}
	kinds := map[string]bool{}
	for i, r := range rs {
		f := fmt.Sprintf("renditions[%d]", i)
		r, err := ExpandRendition(r)
		if err == nil {
			err = CheckRendition(r)
		}
		var re *RuleError
		if errors.As(err, &re) {
			return nil, 0, ruleErr(f+"."+re.Field, "%s", re.Message)
		} else if err != nil {
			return nil, 0, err
		}
		if names[r.Name] {
			return nil, 0, ruleErr(f+".name", "rendition name %q is used twice", r.Name)
		}
		names[r.Name] = true
		if r.Kind != KindVideo && kinds[r.Kind] {
			return nil, 0, ruleErr(f+".kind", "a ladder has at most one %s rendition", r.Kind)
		}
		kinds[r.Kind] = true
		out[i] = r
	}
	return out, segmentSeconds, nil
}

// RestreamFormat picks and checks the container of a restream to a target
// with the given URL scheme: flv for rtmp/rtmps, mpegts for srt (the
// default when format is empty).
func RestreamFormat(scheme, format string) (string, error) {
	srt := scheme == "srt"
	switch format {
	case "":
		if srt {
			return "mpegts", nil
		}
		return "flv", nil
	case "flv":
		if srt {
			return "", ruleErr("format", "flv cannot be sent over srt: use mpegts")
		}
	case "mpegts":
		if !srt {
			return "", ruleErr("format", "mpegts needs an srt:// target")
		}
	default:
		return "", ruleErr("format", "%q: must be flv or mpegts", format)
	}
	return format, nil
}
