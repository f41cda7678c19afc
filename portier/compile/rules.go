package compile

import (
	"fmt"
	"regexp"
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

// CheckRendition checks one rendition against the limits above. Fields are
// named as in the API (width, height, video_bitrate_kbps, ...).
func CheckRendition(r Rendition) error {
	if !ValidName(r.Name) {
		return ruleErr("name", "%q: must be %s", r.Name, NameRule)
	}
	if r.Width < MinWidth || r.Width > MaxWidth || r.Width%2 != 0 {
		return ruleErr("width", "must be an even number between %d and %d", MinWidth, MaxWidth)
	}
	if r.Height < MinHeight || r.Height > MaxHeight || r.Height%2 != 0 {
		return ruleErr("height", "must be an even number between %d and %d", MinHeight, MaxHeight)
	}
	if r.VideoBitrate < MinVideoBitrate || r.VideoBitrate > MaxVideoBitrate {
		return ruleErr("video_bitrate_kbps", "must be between %d and %d", MinVideoBitrate, MaxVideoBitrate)
	}
	if r.AudioBitrate != 0 && (r.AudioBitrate < MinAudioBitrate || r.AudioBitrate > MaxAudioBitrate) {
		return ruleErr("audio_bitrate_kbps", "must be 0 (for %d) or between %d and %d", DefaultAudioBitrate, MinAudioBitrate, MaxAudioBitrate)
	}
	return nil
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
