package compile

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/portier/portier/internal/taskcost"
)

// Presets for task config forms and the API (GET /api/v1/presets): the
// ingest URLs of the big streaming platforms with the shape of their
// stream keys, and HLS ladders built from the rendition Presets. A preset
// only fills fields; what is stored is the filled config, so a preset
// changed later changes no saved config.
//
// The key shapes are checked on every save (CheckTargetKey, called by the
// store's validation): a key of the wrong shape for a platform's host is
// almost always a paste error (the URL, a key with a space cut off,
// another platform's key), and the platform would refuse it only when the
// stream goes live, as an ffmpeg error in a task log. The patterns are
// loose: they check the prefix and alphabet a platform has used for years,
// not lengths.

// RestreamPreset is a platform's ingest. Hosts are the host names (and
// their subdomains) whose keys must match KeyPattern; an empty KeyPattern
// checks nothing. Help says where the key is found (English; the UI
// translates it).
type RestreamPreset struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Target     string   `json:"target"`
	KeyShape   string   `json:"key_shape,omitempty"`
	KeyPattern string   `json:"key_pattern,omitempty"`
	Hosts      []string `json:"hosts"`
	Help       string   `json:"help"`
	keyRE      *regexp.Regexp
}

// RestreamPresets are offered in this order.
var RestreamPresets = []RestreamPreset{
	{ID: "youtube", Name: "YouTube Live", Target: "rtmp://a.rtmp.youtube.com/live2",
		KeyShape: "xxxx-xxxx-xxxx-xxxx-xxxx", KeyPattern: `^[A-Za-z0-9]{4}(-[A-Za-z0-9]{4}){4}$`,
		Hosts: []string{"youtube.com"},
		Help:  "The stream key from YouTube Studio (Go live): five groups of four letters or digits."},
	{ID: "youtube-backup", Name: "YouTube Live (backup ingest)", Target: "rtmp://b.rtmp.youtube.com/live2?backup=1",
		KeyShape: "xxxx-xxxx-xxxx-xxxx-xxxx", KeyPattern: `^[A-Za-z0-9]{4}(-[A-Za-z0-9]{4}){4}$`,
		Hosts: []string{"youtube.com"},
		Help:  "YouTube's backup ingest: the same stream key as the primary, sent by a second task config."},
	{ID: "twitch", Name: "Twitch", Target: "rtmp://live.twitch.tv/app",
		KeyShape: "live_…", KeyPattern: `^live_[0-9]+_[A-Za-z0-9]+(\?[A-Za-z0-9_=&]+)?$`,
		Hosts: []string{"twitch.tv", "contribute.live-video.net", "ingest.global-contribute.live-video.net"},
		Help:  "The primary stream key from the Twitch dashboard (Settings, Stream). live.twitch.tv picks an ingest near this server; for a fixed regional ingest, put a server from https://ingest.twitch.tv/ingests in the URL."},
	{ID: "facebook", Name: "Facebook Live", Target: "rtmps://live-api-s.facebook.com:443/rtmp/",
		KeyShape: "FB-…", KeyPattern: `^(FB-[A-Za-z0-9_-]+|[0-9]+\?[A-Za-z0-9_=&.-]+)$`,
		Hosts: []string{"facebook.com"},
		Help:  "The stream key from Facebook Live Producer. Facebook accepts RTMPS only."},
	{ID: "kick", Name: "Kick", Target: "rtmps://fa723fc1b171.global-contribute.live-video.net/app",
		KeyShape: "sk_…", KeyPattern: `^sk_[A-Za-z0-9_-]+$`,
		Hosts: []string{"fa723fc1b171.global-contribute.live-video.net"},
		Help:  "The stream key from Kick's creator dashboard."},
	{ID: "restream-io", Name: "Restream.io", Target: "rtmp://live.restream.io/live",
		Hosts: []string{"restream.io"},
		Help:  "The stream key from the Restream dashboard; Restream forwards to the channels connected there."},
}

// CustomTargetHelp is the key's help text for a target of no preset.
const CustomTargetHelp = "The key is added to the URL: as its last path element (rtmp, rtmps) or as streamid (srt)."

func init() {
	for i := range RestreamPresets {
		if p := RestreamPresets[i].KeyPattern; p != "" {
			RestreamPresets[i].keyRE = regexp.MustCompile(p)
		}
	}
}

// RestreamPresetByID returns the preset id names, or false.
func RestreamPresetByID(id string) (RestreamPreset, bool) {
	for _, p := range RestreamPresets {
		if p.ID == id {
			return p, true
		}
	}
	return RestreamPreset{}, false
}

// RestreamPresetForTarget returns the preset whose target is target, else
// the first whose hosts hold target's host, or false.
func RestreamPresetForTarget(target string) (RestreamPreset, bool) {
	for _, p := range RestreamPresets {
		if p.Target == target {
			return p, true
		}
	}
	u, err := url.Parse(target)
	if err != nil {
		return RestreamPreset{}, false
	}
	host := strings.ToLower(u.Hostname())
	for _, p := range RestreamPresets {
		for _, h := range p.Hosts {
			if host == h || strings.HasSuffix(host, "."+h) {
				return p, true
			}
		}
	}
	return RestreamPreset{}, false
}

// urlSchemeRE finds a URL pasted where a key belongs.
var urlSchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// CheckTargetKey refuses a restream key that is obviously not one for
// target: a URL, or a key that does not have the shape of the key of the
// platform target's host belongs to. It also refuses no key at all for a
// platform's bare ingest URL (the platform would refuse the publish). The
// RuleError's field is "key"; its message names the expected shape.
func CheckTargetKey(target, key string) error {
	if urlSchemeRE.MatchString(key) {
		return ruleErr("key", "is a URL: paste only the stream key, the part after the last /")
	}
	p, ok := RestreamPresetForTarget(target)
	if !ok || p.keyRE == nil {
		return nil
	}
	if key == "" {
		if bareIngest(p, target) {
			return ruleErr("key", "%s needs its stream key (%s)", p.Name, p.KeyShape)
		}
		return nil
	}
	if !p.keyRE.MatchString(key) {
		return ruleErr("key", "%s stream keys look like %s: paste the whole key and nothing else", p.Name, p.KeyShape)
	}
	return nil
}

// bareIngest reports whether target is p's ingest URL with no stream key
// in its path (the key may be written into the URL instead of the field).
func bareIngest(p RestreamPreset, target string) bool {
	u, err1 := url.Parse(target)
	pu, err2 := url.Parse(p.Target)
	if err1 != nil || err2 != nil {
		return false
	}
	return strings.Trim(u.Path, "/") == strings.Trim(pu.Path, "/")
}

// LadderPreset is an HLS ladder: its renditions expanded from the
// rendition Presets (names, sizes, bitrates), as a config stores them.
type LadderPreset struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Renditions []Rendition `json:"renditions"`
	// Cost is the ladder's placement cost (HLSCost) in CPU cores, as the
	// API shows task costs and concierge capacity.
	Cost float64 `json:"cost"`
}

// ladderPresets names each ladder's renditions by rendition preset.
var ladderPresets = []struct {
	id, name string
	rungs    []string
}{
	{"1080p", "1080p/720p/480p/360p", []string{"1080p", "720p", "480p", "360p"}},
	{"720p", "720p/480p/360p", []string{"720p", "480p", "360p"}},
	{"480p", "480p/360p (low CPU)", []string{"480p", "360p"}},
	{"audio", "Audio only", []string{"audio"}},
	{"copy", "Copy (no transcode)", []string{"copy"}},
}

// LadderPresets are the HLS ladders offered, in this order. The
// renditions are the rendition Presets (1080p 5000k, 720p 2800k, 480p
// 1400k, 360p 800k of H.264; AAC 128k above 480p, 96k from 480p down),
// a common ladder close to Apple's HLS authoring specification.
var LadderPresets = func() []LadderPreset {
	out := make([]LadderPreset, 0, len(ladderPresets))
	for _, l := range ladderPresets {
		var rs []Rendition
		for _, name := range l.rungs {
			r, err := ExpandRendition(Rendition{Preset: name})
			if err != nil {
				panic("compile: ladder preset " + l.id + ": " + err.Error()) // static data
			}
			r.Preset = ""
			rs = append(rs, r)
		}
		out = append(out, LadderPreset{ID: l.id, Name: l.name, Renditions: rs, Cost: taskcost.Cores(HLSCost(rs))})
	}
	return out
}()

// LadderPresetByID returns the ladder id names, or false.
func LadderPresetByID(id string) (LadderPreset, bool) {
	for _, l := range LadderPresets {
		if l.ID == id {
			return l, true
		}
	}
	return LadderPreset{}, false
}
