package portier

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/nodeapi"
)

// Params configures a control-plane Server.
type Params struct {
	Store *models.Store
	// ClusterToken authenticates nodes (relays, concierges) and media-server
	// hooks. No caller is trusted for its address alone, loopback included
	// (behind a reverse proxy on the same host, everyone is loopback): only
	// the networks of Hooks.Allow are.
	ClusterToken string
	Logger       *slog.Logger
	// Hooks configures the media-server hook endpoints (portier/nodeapi).
	Hooks HookParams
	// Live configures live state, the node registry and task compilation (portier/live).
	Live LiveParams

	// PublicHost is the host name encoders and players use in ingest and play
	// URLs. Empty: the host of the API request.
	PublicHost string
	// RTMPPort is the public RTMP port of the relays (default 1935).
	RTMPPort int
	// RTSPPort is the public RTSP port of the relays, for play URLs (0:
	// the relays serve no RTSP and streams show no RTSP URL).
	RTSPPort int
	// PlayHTTPBase is the base URL of HTTP-FLV playback, e.g.
	// "http://example.com:8081". Empty: the address the API was reached at
	// (right for `portier run`, which serves HTTP-FLV there).
	PlayHTTPBase string
	// PublicURL is the base URL the web UI and REST API are reached at,
	// e.g. "https://portier.example.com": the links webhooks carry
	// (recording.finished's download_url) start with it.
	PublicURL string

	// Security holds the account and input hardening settings (trusted
	// proxies, login throttling, task URL networks).
	Security SecurityParams

	// HistoryInterval is how often the dashboard's graphs sample the
	// cluster (default 10 s; they keep the last hour).
	HistoryInterval time.Duration
}

// LiveParams configures live state, the node registry and task compilation.
type LiveParams struct {
	// HeartbeatInterval is what nodes are told to heartbeat at (default 1s).
	// A node that misses 3 intervals is dead: the streams it held are cleared.
	HeartbeatInterval time.Duration
	// Compile is the environment task descriptions are resolved against
	// (relay URL, record directory, HLS origin and its per-task tokens).
	// An empty RelayRTMPURL defaults to rtmp://127.0.0.1:1935.
	Compile compile.Env
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
}

// SecurityParams are the control plane's account and input hardening
// settings.
type SecurityParams struct {
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For and X-Real-IP are believed
	// (--trusted-proxies). Empty: none; the TCP peer is the client.
	TrustedProxies []netip.Prefix

	// TaskURLs are the networks task sources and targets may or may not
	// reach beyond the built-in rules (--task-url-allow, --task-url-deny;
	// see models.TaskURLPolicy).
	TaskURLs models.TaskURLPolicy

	// Now is the clock of login throttling (tests inject one); nil is time.Now.
	Now func() time.Time
}

// HookParams configures the hook endpoints that media servers call and
// the node API (portier/nodeapi).
type HookParams = nodeapi.HookParams

// ParseHookAllow parses --hook-allow (see nodeapi.ParseHookAllow).
func ParseHookAllow(s string) (map[string][]netip.Prefix, error) { return nodeapi.ParseHookAllow(s) }

// ParseOriginTTL parses --hook-origin-ttl (see nodeapi.ParseOriginTTL).
func ParseOriginTTL(s string) (map[string]time.Duration, error) { return nodeapi.ParseOriginTTL(s) }

// ParseTrustedProxies parses a comma-separated list of networks (CIDR) or
// single addresses, e.g. "10.0.0.0/8,192.168.1.7". Empty is none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) { return models.ParseNetworks(s) }
