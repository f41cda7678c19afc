// Package compile turns a task config and the state of its stream into a
// fully resolved task description: the ffmpeg argument list, input and output
// URLs, environment and resource cost. It is a pure function with no I/O, so
// the control plane can compile (and re-compile to detect edits) cheaply.
package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/portier/portier/internal/nodewire"
)

// Task config types.
const (
	TypeRestream = "restream"
	TypeRecord   = "record"
	TypePull     = "pull"
	TypeHLS      = "hls"
)

// ErrInvalid is wrapped by every validation error Compile returns.
var ErrInvalid = errors.New("invalid task config")

// Rendition is one variant of an HLS ladder. Kind says what it is: an
// encoded video rung (KindVideo, the default), the source as is (KindCopy)
// or audio only (KindAudio). A Preset fills the fields left zero (see
// Presets and ExpandRendition).
type Rendition struct {
	Name         string `json:"name"`
	Preset       string `json:"preset,omitempty"`
	Kind         string `json:"kind,omitempty"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	FPS          int    `json:"fps,omitempty"` // 0 keeps the source's frame rate
	VideoBitrate int    `json:"video_bitrate_kbps"`
	AudioBitrate int    `json:"audio_bitrate_kbps"`
}

// TaskConfigInput is what the compiler needs from a task config. The control
// plane fills it from its models; only the fields of the config's Type matter.
type TaskConfigInput struct {
	ID   int64
	Type string
	Name string // a label; it never changes the command

	// Labels are the concierge labels the task requires (placement only).
	Labels map[string]string

	// restream
	Target string // rtmp://, rtmps:// or srt:// URL
	Key    string // appended as the last path element (rtmp/rtmps) or as streamid (srt)
	Format string // restream: "flv" or "mpegts" (empty picks from the target scheme); record: "mp4", "flv" or "ts" (default ts)

	// record and hls
	SegmentSeconds int // record: segment length (default 60); hls: segment length (default 2)

	// pull
	Source string // rtsp://, rtsps://, rtmp://, rtmps://, srt:// URL or http(s):// HLS playlist

	// hls
	Renditions []Rendition
}

// StreamState is the state of the stream a task works on.
type StreamState struct {
	ID   int64
	App  string
	Name string
	Key  string // the stream's publish key (used by pull tasks to publish into the relay)
	// Tracks is what the relay holding the publish reported of its
	// tracks; the HLS task maps only the tracks there are.
	Tracks Tracks
}

// Tracks is what is known of a live stream's tracks. Unknown (before the
// relay's first report) is taken as video and audio.
type Tracks struct {
	Known        bool
	Video, Audio bool
}

// Env is the deployment environment the description is resolved against.
type Env struct {
	FFmpeg       string // ffmpeg binary; default "ffmpeg"
	RelayRTMPURL string // base URL of the relay tasks pull from and publish to, e.g. rtmp://127.0.0.1:1935
	RecordDir    string // base directory for recordings
	HLSOriginURL string // base URL of the HLS origin, e.g. http://127.0.0.1:8090
	// CheckURL, when set, vets the source of a pull and the target of a
	// restream against the deployment's network policy (the control plane
	// passes models.TaskURLPolicy.Check), so a config saved before a
	// policy change cannot reach a refused network either.
	CheckURL func(field string, u *url.URL) error
	// InternalSig returns the proof (nodewire.InternalPlaySig) that lets a
	// task's relay input count as the system's own player rather than a
	// viewer. A credential derived from the cluster token: the token
	// itself never goes into a command line. The control plane sets it
	// from its cluster token when unset.
	InternalSig func(path, typ string) string
}

// Description is a fully resolved task: what a concierge runs.
type Description struct {
	Type    string            `json:"type"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
	Input   string            `json:"input"`
	Outputs []string          `json:"outputs"`
	// Dirs are local directories the runner creates before starting.
	Dirs []string `json:"dirs,omitempty"`
	Cost int      `json:"cost"`
	// Labels are the concierge labels the task must run on (placement).
	Labels map[string]string `json:"labels,omitempty"`
	// Version is the hash of everything that affects the running process
	// (see Hash); a config edit that keeps it unchanged needs no restart.
	Version string `json:"version"`
	// Relay is the relay base URL the description was compiled against
	// (Env.RelayRTMPURL), and RelayArgs the indexes of the arguments that
	// are URLs on it: the input of restream, record and HLS tasks, the
	// output of pulls. A concierge that names the relay near its host
	// (portier concierge --relay-rtmp) puts its own base in their place, so
	// Relay is only the fallback. Both follow from Args, so Hash leaves
	// them out.
	Relay     string `json:"relay,omitempty"`
	RelayArgs []int  `json:"relay_args,omitempty"`
	// CredentialArg is the index of the argument that holds
	// CredentialPlaceholder (0: none). The credential of an HLS task names
	// its task id and fencing epoch, which change after compilation (a
	// failover raises the epoch, the description stays), so the control
	// plane signs one per assignment and the concierge puts it in place of
	// the placeholder when it writes the program. It follows from Args, so
	// Hash leaves it out.
	CredentialArg int `json:"credential_arg,omitempty"`
	// RelayPull, set on pulls of an rtsp:// or rtsps:// source, says that
	// an origin relay can pull the source itself (media/rtsppull) instead
	// of a concierge running the ffmpeg command: the control plane assigns
	// the task to an alive origin with nodewire.CapRTSPPull, and to a
	// concierge (Args) only when there is none. It follows from Input, so
	// Hash leaves it out.
	RelayPull *RelayPull `json:"relay_pull,omitempty"`
}

// RelayPull is what an origin needs to pull a task's RTSP source itself;
// the stream's path and key are the task's stream's.
type RelayPull struct {
	Source string `json:"source"`
}

// CredentialPlaceholder stands for the task's HLS credential in the
// argument Description.CredentialArg (concierge/wire has the same value).
const CredentialPlaceholder = "{{PORTIER_HLS_CREDENTIAL}}"

// Hash is a stable digest of the parts of d that affect the running process:
// command, arguments, environment, URLs and directories, and the labels
// that move it. Cost is placement only: it follows from the arguments, and
// migration 00012 could only scale the stored costs of HLS tasks to the
// new unit, so a recompilation that differs in cost alone must not
// restart them.
func (d Description) Hash() string {
	keys := make([]string, 0, len(d.Env))
	for k := range d.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+d.Env[k])
	}
	b, _ := json.Marshal(struct {
		T, C    string
		A, E, O []string
		I       string
		D       []string
	}{d.Type, d.Command, d.Args, env, d.Outputs, d.Input, d.Dirs})
	if len(d.Labels) > 0 {
		// Required labels move the task, so they are part of the version;
		// without labels the hash is what it was before labels existed.
		lk := make([]string, 0, len(d.Labels))
		for k, v := range d.Labels {
			lk = append(lk, k+"="+v)
		}
		sort.Strings(lk)
		b = append(b, []byte("\nlabels:"+strings.Join(lk, ","))...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// NeedsReplace reports whether a running task compiled as old must be
// replaced to run as new: true when anything that reaches the process
// changed, false for edits such as a rename.
func NeedsReplace(old, new Description) bool { return old.Hash() != new.Hash() }

// Compile resolves cfg against the stream st and the environment env.
func Compile(cfg TaskConfigInput, st StreamState, env Env) (Description, error) {
	if err := checkStream(st); err != nil {
		return Description{}, err
	}
	if env.FFmpeg == "" {
		env.FFmpeg = "ffmpeg"
	}
	if err := checkURL("relay URL", env.RelayRTMPURL, "rtmp", "rtmps"); err != nil {
		return Description{}, err
	}
	var (
		d   Description
		err error
	)
	switch cfg.Type {
	case TypeRestream:
		d, err = restream(cfg, st, env)
	case TypeRecord:
		d, err = record(cfg, st, env)
	case TypePull:
		d, err = pull(cfg, st, env)
	case TypeHLS:
		d, err = hls(cfg, st, env)
	default:
		return Description{}, fmt.Errorf("%w: unknown type %q (want restream, record, pull or hls)", ErrInvalid, cfg.Type)
	}
	if err != nil {
		return Description{}, err
	}
	d.Type = cfg.Type
	d.Command = env.FFmpeg
	d.Relay = strings.TrimRight(env.RelayRTMPURL, "/")
	if len(cfg.Labels) > 0 {
		d.Labels = make(map[string]string, len(cfg.Labels))
		for k, v := range cfg.Labels {
			if hasControl(k) || hasControl(v) {
				return Description{}, fmt.Errorf("%w: a label contains a control character", ErrInvalid)
			}
			d.Labels[k] = v
		}
	}
	for i, a := range d.Args {
		// The value of -headers is built here (the credential header) and
		// must end in CR LF; everything else must be free of control bytes.
		if i > 0 && d.Args[i-1] == "-headers" {
			continue
		}
		if hasControl(a) {
			return Description{}, fmt.Errorf("%w: argument contains a control character", ErrInvalid)
		}
	}
	d.Version = d.Hash()
	return d, nil
}

// commonInput is the argument prefix every task uses to read from url.
// ffmpeg logs warnings and errors only; the concierge adds -progress
// pipe:1 -stats_period 5 (concierge/progress.go), so a healthy task's log
// gets a progress block every 5 s instead of staying empty, and the
// concierge reads its progress from there. They are left out here because
// how progress is read depends on how the concierge captures a task's
// output, and because adding them would change every description's hash
// (and so restart every running task on upgrade).
func commonInput(url string) []string {
	a := []string{"-hide_banner", "-nostdin", "-loglevel", "warning"}
	if strings.HasPrefix(url, "rtsp://") || strings.HasPrefix(url, "rtsps://") {
		// The RTSP demuxer has its own socket timeout; rw_timeout would be
		// rejected as an unused option.
		a = append(a, "-rtsp_transport", "tcp", "-timeout", "10000000")
	} else {
		a = append(a, "-rw_timeout", "10000000")
	}
	return append(a, "-i", url)
}

// inputArg is the index of the input URL in args (after commonInput's "-i").
func inputArg(args []string) int {
	for i, a := range args {
		if a == "-i" {
			return i + 1
		}
	}
	return -1
}

// relayURL is the relay URL of the stream st (where pulls publish).
func relayURL(env Env, st StreamState) string {
	return strings.TrimRight(env.RelayRTMPURL, "/") + "/" + st.App + "/" + st.Name
}

// relayInput is the URL a task of type typ reads st from: the relay URL
// marked as the system's own player, so the relay does not count the task
// as a viewer (nodewire.InternalPlayQuery), with the proof env.InternalSig
// gives (the relay ignores the mark without it).
func relayInput(env Env, st StreamState, typ string) string {
	q := nodewire.InternalPlayQuery + "=" + typ
	if env.InternalSig != nil {
		if sig := env.InternalSig(st.App+"/"+st.Name, typ); sig != "" {
			q += "&" + nodewire.InternalPlaySigQuery + "=" + sig
		}
	}
	return relayURL(env, st) + "?" + q
}
