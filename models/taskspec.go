package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/portier/portier/portier/compile"
)

// SpecError says which field of a task config is wrong and how to fix it.
type SpecError struct {
	Field   string
	Message string
	// Rule, when set, is the rule the value breaks (NameRule): forms show
	// it in their own words.
	Rule string
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Message }

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// NodeLabels are the concierge labels a config's task requires (placement:
// the task runs only on a concierge started with every one of them). Every
// spec embeds it, so any task config accepts "labels": {"k": "v"}.
type NodeLabels struct {
	Labels map[string]string `json:"labels,omitempty"`
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// validateLabels checks at most 16 labels of 1-63 characters of A-Z a-z 0-9 _ . - each.
func (l NodeLabels) validateLabels() error {
	if len(l.Labels) > 16 {
		return specErr("labels", "at most 16 labels")
	}
	for k, v := range l.Labels {
		if !labelRE.MatchString(k) {
			return specErr("labels", "label name %q: use 1-63 of A-Z a-z 0-9 _ . - starting with a letter or digit", k)
		}
		if !labelRE.MatchString(v) {
			return specErr("labels."+k, "label value %q: use 1-63 of A-Z a-z 0-9 _ . - starting with a letter or digit", v)
		}
	}
	return nil
}

// RequiredLabels decodes the labels a config's task requires (nil if none).
func (c *TaskConfig) RequiredLabels() map[string]string {
	var l NodeLabels
	_ = json.Unmarshal(c.Spec, &l)
	return l.Labels
}

// RestreamSpec sends the stream to another RTMP/RTMPS/SRT server.
type RestreamSpec struct {
	NodeLabels
	Target string `json:"target"`
	Key    string `json:"key,omitempty"`
	Format string `json:"format,omitempty"` // "flv" (default for rtmp/rtmps) or "mpegts" (default for srt)
}

// RecordSpec records the stream into segments.
type RecordSpec struct {
	NodeLabels
	SegmentSeconds int    `json:"segment_seconds"`
	Format         string `json:"format"` // mp4, flv or ts
}

// PullSpec pulls a remote source into the stream.
type PullSpec struct {
	NodeLabels
	Source string `json:"source"`
}

// Rendition is one rung of an HLS ladder (compile.Rendition says what the
// fields mean). A preset ("1080p", "720p", "480p", "360p", "audio", "copy")
// fills what is left out; the stored spec holds the expanded rendition.
type Rendition struct {
	Name             string `json:"name"`
	Preset           string `json:"preset,omitempty"`
	Kind             string `json:"kind,omitempty"` // video (default), copy or audio
	Width            int    `json:"width"`
	Height           int    `json:"height"`
	FPS              int    `json:"fps,omitempty"`
	VideoBitrateKbps int    `json:"video_bitrate_kbps"`
	AudioBitrateKbps int    `json:"audio_bitrate_kbps"`
}

// Compile is r as the compiler takes it.
func (r Rendition) Compile() compile.Rendition {
	return compile.Rendition{Name: r.Name, Preset: r.Preset, Kind: r.Kind, Width: r.Width, Height: r.Height,
		FPS: r.FPS, VideoBitrate: r.VideoBitrateKbps, AudioBitrate: r.AudioBitrateKbps}
}

func renditionOf(r compile.Rendition) Rendition {
	return Rendition{Name: r.Name, Preset: r.Preset, Kind: r.Kind, Width: r.Width, Height: r.Height,
		FPS: r.FPS, VideoBitrateKbps: r.VideoBitrate, AudioBitrateKbps: r.AudioBitrate}
}

// HLSSpec transcodes the stream into a multi-variant HLS ladder.
type HLSSpec struct {
	NodeLabels
	Renditions     []Rendition `json:"renditions"`
	SegmentSeconds int         `json:"segment_seconds,omitempty"`
}

// hostRE accepts DNS names and IPv4/IPv6 literals.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,253}$`)

var keyRE = regexp.MustCompile(`^[A-Za-z0-9_.~=+/?&:-]{1,512}$`)

// checkURL parses u and checks its scheme against allowed, and that it has no
// whitespace or control characters (arguments go to ffmpeg as a list, but
// ffmpeg itself interprets URLs).
func checkURL(field, u string, allowed ...string) (*url.URL, error) {
	if u == "" {
		return nil, specErr(field, "is required")
	}
	if len(u) > 2048 {
		return nil, specErr(field, "is longer than 2048 characters")
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f || r > 0x7e {
			return nil, specErr(field, "must not contain spaces, control or non-ASCII characters (percent-encode them)")
		}
		if strings.ContainsRune("<>\"'`\\{}|^", r) {
			return nil, specErr(field, "must not contain %q (percent-encode it)", r)
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return nil, specErr(field, "is not a URL: %v", err)
	}
	scheme := strings.ToLower(p.Scheme)
	ok := false
	for _, a := range allowed {
		if scheme == a {
			ok = true
		}
	}
	if !ok {
		return nil, specErr(field, "scheme %q is not allowed; use one of %s", p.Scheme, strings.Join(allowed, ", "))
	}
	if p.Host == "" || p.Hostname() == "" {
		return nil, specErr(field, "needs a host, like %s://host:port/path", allowed[0])
	}
	if !hostRE.MatchString(p.Hostname()) {
		return nil, specErr(field, "host %q is not a valid host name or IP address", p.Hostname())
	}
	return p, nil
}

// Validate checks a restream spec.
func (r *RestreamSpec) Validate() error {
	p, err := checkURL("target", r.Target, "rtmp", "rtmps", "srt")
	if err != nil {
		return err
	}
	if r.Key != "" && !keyRE.MatchString(r.Key) {
		return specErr("key", "may contain only letters, digits and _ . ~ = + / ? & : - (at most 512)")
	}
	// A key of the wrong shape for a platform's ingest (compile.RestreamPresets).
	if err := compile.CheckTargetKey(r.Target, r.Key); err != nil {
		var re *compile.RuleError
		if errors.As(err, &re) {
			return specErr(re.Field, "%s", re.Message)
		}
		return specErr("key", "%v", err)
	}
	format, err := compile.RestreamFormat(strings.ToLower(p.Scheme), r.Format)
	if err != nil {
		var re *compile.RuleError
		if errors.As(err, &re) {
			return specErr(re.Field, "%s", re.Message)
		}
		return specErr("format", "%v", err)
	}
	r.Format = format
	return nil
}

// Validate checks a record spec and fills defaults.
func (r *RecordSpec) Validate() error {
	if r.SegmentSeconds == 0 {
		r.SegmentSeconds = 60
	}
	if r.SegmentSeconds < 1 || r.SegmentSeconds > 86400 {
		return specErr("segment_seconds", "must be between 1 and 86400")
	}
	switch r.Format {
	case "":
		r.Format = "mp4"
	case "mp4", "flv", "ts":
	default:
		return specErr("format", "must be mp4, flv or ts")
	}
	return nil
}

// Validate checks a pull spec.
func (r *PullSpec) Validate() error {
	p, err := checkURL("source", r.Source, "rtmp", "rtmps", "rtsp", "rtsps", "srt", "http", "https")
	if err != nil {
		return err
	}
	if s := strings.ToLower(p.Scheme); (s == "http" || s == "https") && !strings.HasSuffix(strings.ToLower(p.Path), ".m3u8") {
		return specErr("source", "an http(s) source must be an HLS playlist (.m3u8)")
	}
	return nil
}

// Validate checks an HLS ladder with the compiler's rules
// (compile.CheckLadder) and stores it expanded (presets, defaults).
func (h *HLSSpec) Validate() error {
	in := make([]compile.Rendition, len(h.Renditions))
	for i, r := range h.Renditions {
		in[i] = r.Compile()
	}
	out, seg, err := compile.CheckLadder(in, h.SegmentSeconds)
	if err != nil {
		var re *compile.RuleError
		if errors.As(err, &re) {
			return specErr(re.Field, "%s", re.Message)
		}
		return specErr("renditions", "%v", err)
	}
	for i, r := range out {
		h.Renditions[i] = renditionOf(r)
	}
	h.SegmentSeconds = seg
	return nil
}

// ParseSpec decodes and validates the type-specific fields of a task config
// (unknown fields are errors) and returns the normalised spec as JSON.
func ParseSpec(typ string, raw []byte) (RawJSON, error) {
	var v interface{ Validate() error }
	switch typ {
	case TypeRestream:
		v = &RestreamSpec{}
	case TypeRecord:
		v = &RecordSpec{}
	case TypePull:
		v = &PullSpec{}
	case TypeHLS:
		v = &HLSSpec{}
	default:
		return nil, specErr("type", "must be restream, record, pull or hls")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	// Leaving segment_seconds out takes the default; an explicit 0 is a
	// mistake to name, not a value to replace silently.
	if typ == TypeRecord || typ == TypeHLS {
		var probe map[string]json.RawMessage
		if json.Unmarshal(raw, &probe) == nil && string(bytes.TrimSpace(probe["segment_seconds"])) == "0" {
			return nil, specErr("segment_seconds", "must be between 1 and 86400 (leave it out for the default)")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return nil, specErr(strings.TrimPrefix(ute.Field, "NodeLabels."), "has the wrong type (a JSON %s)", ute.Value)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, specErr(strings.Trim(f, `"`), "is not a field of a %s config", typ)
		}
		return nil, specErr("spec", "%v", err)
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if l, ok := v.(interface{ validateLabels() error }); ok {
		if err := l.validateLabels(); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	return out, nil
}

// Restream decodes the spec of a restream config.
func (c *TaskConfig) Restream() (RestreamSpec, error) {
	var s RestreamSpec
	return s, json.Unmarshal(c.Spec, &s)
}

// Record decodes the spec of a record config.
func (c *TaskConfig) Record() (RecordSpec, error) {
	var s RecordSpec
	return s, json.Unmarshal(c.Spec, &s)
}

// Pull decodes the spec of a pull config.
func (c *TaskConfig) Pull() (PullSpec, error) {
	var s PullSpec
	return s, json.Unmarshal(c.Spec, &s)
}

// HLS decodes the spec of an HLS config.
func (c *TaskConfig) HLS() (HLSSpec, error) {
	var s HLSSpec
	return s, json.Unmarshal(c.Spec, &s)
}
