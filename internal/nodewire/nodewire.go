// Package nodewire holds the messages of the node API between the nodes
// (relays, HLS origins, CDN edges) and the control plane (/internal/v1),
// imported by both sides (media/controlclient, the client; portier, the
// server), and the liveness rules both sides must agree on: how often a node
// heartbeats, how long it counts as alive, how long a lease lasts. The
// concierge's protocol is concierge/wire.
package nodewire

import "time"

// Liveness: the one definition of each rule.
const (
	// DefaultHeartbeat is the heartbeat interval the control plane tells
	// nodes when it is not configured otherwise.
	DefaultHeartbeat = time.Second
	// AliveHeartbeats is how many heartbeat intervals a node counts as
	// alive after its last heartbeat: a node that missed this many is
	// dead (its name is free, its streams are cleared).
	AliveHeartbeats = 3
	// LeaseHeartbeats is how many heartbeat intervals a task assignment's
	// lease lasts without a heartbeat.
	LeaseHeartbeats = 5
)

// AliveWindow is how long after its last heartbeat a node heartbeating
// every hb counts as alive.
func AliveWindow(hb time.Duration) time.Duration { return AliveHeartbeats * hb }

// Lease is the lease of a node heartbeating every hb.
func Lease(hb time.Duration) time.Duration { return LeaseHeartbeats * hb }

// Paths of the node API, under the control plane's base URL.
const (
	PathRegister         = "/internal/v1/nodes/register"
	PathLeave            = "/internal/v1/nodes/leave"
	PathNodes            = "/internal/v1/nodes"
	PathPublishAuthorize = "/internal/v1/publish/authorize"
	PathPublishDone      = "/internal/v1/publish/done"
	PathPublishResolve   = "/internal/v1/publish/resolve"
	PathPlayAuthorize    = "/internal/v1/play/authorize"
)

// PathHeartbeat is the heartbeat path of node name (path-escaped by the caller).
func PathHeartbeat(escapedName string) string {
	return "/internal/v1/nodes/" + escapedName + "/heartbeat"
}

// PathDirectory is the directory path of app/name (path-escaped by the caller).
func PathDirectory(escapedApp, escapedName string) string {
	return "/internal/v1/directory/" + escapedApp + "/" + escapedName
}

// NodeInfo is what a node registers.
type NodeInfo struct {
	Name        string            `json:"name"`
	Role        string            `json:"role"`
	RTMPAddress string            `json:"rtmp_address,omitempty"`
	HTTPAddress string            `json:"http_address,omitempty"`
	Capacity    int               `json:"capacity,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Version     string            `json:"version,omitempty"`
	// Host is the host name the node runs on: with the role and addresses
	// it tells the control plane a restart from another node of the name.
	Host string `json:"host,omitempty"`
	// Capabilities are what the node can do beyond its role's basics
	// (CapRTSPPull); older nodes send none.
	Capabilities []string `json:"capabilities,omitempty"`
}

// CapRTSPPull is the capability of an origin that pulls the RTSP sources
// the control plane assigns it (HeartbeatReply.Pulls) and reports them
// (Heartbeat.Pulls). Without an alive origin that has it, the control
// plane runs RTSP pull configs with ffmpeg on a concierge.
const CapRTSPPull = "rtsp-pull"

// HasCapability reports whether caps has c.
func HasCapability(caps []string, c string) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

// PullOrder is one RTSP source the control plane assigns an origin to pull
// into a stream. The full set comes with every heartbeat answer: a pull
// not in it stops.
type PullOrder struct {
	// TaskID is the control plane's task of the pull; the origin reports
	// it back in Heartbeat.Pulls.
	TaskID int64 `json:"task_id"`
	// Path is the stream's "app/name".
	Path string `json:"path"`
	// Key is the stream's publish key: the origin authorises each session
	// with it like an encoder's publish. Never logged.
	Key string `json:"key"`
	// URL is the rtsp:// or rtsps:// source, with its credentials.
	URL string `json:"url"`
	// Transport is "udp", "tcp" or "" (UDP, then TCP).
	Transport string `json:"transport,omitempty"`
}

// PullReport is the state of one assigned pull, reported with every
// heartbeat of an origin that has CapRTSPPull.
type PullReport struct {
	TaskID int64  `json:"task_id"`
	Path   string `json:"path"`
	// Playing: a session is up and publishing into the stream.
	Playing bool `json:"playing"`
	// Error is the last session's failure (no credentials), when not playing.
	Error string `json:"error,omitempty"`
	// Failures counts the sessions that failed since the origin took the pull.
	Failures uint64 `json:"failures,omitempty"`
}

// RegisterReply is the control plane's answer to a registration.
type RegisterReply struct {
	Name                string `json:"name"`
	HeartbeatIntervalMS int    `json:"heartbeat_interval_ms"`
	LeaseMS             int    `json:"lease_ms"`
}

// Load is a node's load, reported with every heartbeat.
type Load struct {
	Connections int   `json:"connections"`
	Streams     int   `json:"streams"`
	BitrateIn   int64 `json:"bitrate_in"`
	BitrateOut  int64 `json:"bitrate_out"`
	CostUsed    int   `json:"cost_used"` // concierges: the cost of their tasks, taskcost units
	// UploadsPerSecond and StorageErrors are reported by HLS origins.
	UploadsPerSecond float64 `json:"uploads_per_second,omitempty"`
	StorageErrors    int64   `json:"storage_errors,omitempty"`
	// ActiveRequests, HitRatio (viewer requests served without an origin
	// fetch of their own, since the previous heartbeat), CacheBytes and
	// CacheCapacityBytes are reported by CDN edges; their egress is
	// BitrateOut.
	ActiveRequests     int     `json:"active_requests,omitempty"`
	HitRatio           float64 `json:"hit_ratio,omitempty"`
	CacheBytes         int64   `json:"cache_bytes,omitempty"`
	CacheCapacityBytes int64   `json:"cache_capacity_bytes,omitempty"`
	// Host is the node's own figures from its heartbeat (Heartbeat.Host),
	// which the control plane keeps with the load; nodes leave it out here.
	Host *HostStats `json:"host,omitempty"`
}

// Heartbeat is one heartbeat body. Published is the full set of app/name
// streams whose publish this node holds (origins only). Streams (optional;
// older relays leave it out) has the statistics of every stream the relay
// has: on origins the published ones, on edges the pulled ones.
type Heartbeat struct {
	Load      Load     `json:"load"`
	Published []string `json:"published"`
	// Publishes is Published with the identity of each publish (the
	// stream and publish ids its authorisation answered): a control plane
	// that knows it attaches a publish only to the stream that authorised
	// it, and ignores Published. Older control planes read Published.
	Publishes []PublishedStream `json:"publishes"`
	Streams   []StreamReport    `json:"streams"`
	// Host is the node's own figures: version, uptime, CPU and memory
	// (nil from older nodes).
	Host *HostStats `json:"host,omitempty"`
	// Pulls is the state of the pulls the control plane assigned: a list
	// (empty when there are none) from origins with CapRTSPPull, which
	// asks for HeartbeatReply.Pulls; nil (null) from other nodes.
	Pulls []PullReport `json:"pulls"`
}

// HostStats is what a node reports of itself and its host with every
// heartbeat (filled by media/controlclient's agent from
// internal/hoststats; concierge/wire.HostStats is the same JSON).
type HostStats struct {
	Version       string `json:"version,omitempty"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	CPUs          int    `json:"cpus"`
	// CPUPercent is the host's CPU use since the previous heartbeat, 100
	// when every CPU was busy.
	CPUPercent       float64 `json:"cpu_percent"`
	Load1            float64 `json:"load1"`
	MemoryTotalBytes int64   `json:"memory_total_bytes"`
	MemoryUsedBytes  int64   `json:"memory_used_bytes"`
	ProcessRSSBytes  int64   `json:"process_rss_bytes"`
}

// PublishedStream is one publish an origin holds.
type PublishedStream struct {
	Path      string `json:"path"`
	StreamID  int64  `json:"stream_id"`
	PublishID int64  `json:"publish_id"`
}

// EndOrder tells a relay to end one publish.
type EndOrder struct {
	Path      string `json:"path"`
	StreamID  int64  `json:"stream_id"`
	PublishID int64  `json:"publish_id"`
	Reason    string `json:"reason"` // deleted, disabled, key_rotated, kicked
}

// StreamReport is one stream's statistics on one relay.
type StreamReport struct {
	// Path is "app/name".
	Path string `json:"path"`
	// Publisher: the stream has a publisher on this relay now (on an edge,
	// the upstream pull from an origin, or a client whose publish the edge
	// forwards to an origin).
	Publisher  bool    `json:"publisher"`
	VideoCodec string  `json:"video_codec,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	AudioCodec string  `json:"audio_codec,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	// BitrateIn is the publisher's bitrate in bits per second.
	BitrateIn int64 `json:"bitrate_in"`
	// Players are the stream's readers on this relay, every protocol,
	// including relay-internal ones (an edge's upstream pull is a player at
	// the origin; a forwarded publish is a player at the edge) but not the
	// system's own (InternalPlayQuery: task inputs, thumbnail grabs).
	Players int `json:"players"`
	// The publisher as this relay sees it (older relays leave these
	// out): its address (IP:port; on an origin behind an edge, the edge's
	// forwarding session), its protocol ("rtmp", "rtsp", "rtsp-pull",
	// "edge-pull") and its software as it names itself (an RTMP
	// onMetaData "encoder", else the connect's flashVer; an RTSP
	// User-Agent). Client-supplied: at most 128 bytes, no control
	// characters.
	PublisherAddr     string `json:"publisher_addr,omitempty"`
	PublisherProtocol string `json:"publisher_protocol,omitempty"`
	Encoder           string `json:"encoder,omitempty"`
	// GOPMillis and GOPFrames are the last complete group of pictures the
	// relay received: keyframe to keyframe, from their timestamps, and
	// its frames (left out until two keyframes went through).
	GOPMillis int64 `json:"gop_ms,omitempty"`
	GOPFrames int   `json:"gop_frames,omitempty"`
}

// InternalPlayQuery is the query parameter of a play URL by which the
// system's own players (concierge task inputs, the control plane's
// thumbnail grabs) tell a relay that they are not viewers, e.g.
// rtmp://edge/live/NAME?portier_internal=restream&portier_sig=…. It is
// honoured only with a valid InternalPlaySigQuery (see IsInternalPlay).
const InternalPlayQuery = "portier_internal"

// PublishRequest asks whether a publish may start.
type PublishRequest struct {
	Node     string `json:"node"`
	App      string `json:"app"`
	Name     string `json:"name"`
	Query    string `json:"query"`
	Addr     string `json:"addr"`
	Protocol string `json:"protocol"`
}

// PublishDecision is the answer. When Allow, Name is the public stream name
// the relay must publish under (it differs from the request's when the key
// was given as the name).
type PublishDecision struct {
	Allow    bool   `json:"allow"`
	App      string `json:"app"`
	Name     string `json:"name"`
	StreamID int64  `json:"stream_id"`
	// PublishID is the stream's number of this publish (0 from older
	// control planes). With StreamID it identifies the publish in
	// heartbeats, publish-done and end orders.
	PublishID int64  `json:"publish_id"`
	Takeover  bool   `json:"takeover"`
	Reason    string `json:"reason"`
	// Code is the refusal's machine-readable reason (unknown_stream,
	// bad_key, …); empty when allowed.
	Code string `json:"code,omitempty"`
}

// PlayRequest asks whether a player may play.
type PlayRequest struct {
	Node  string `json:"node"`
	App   string `json:"app"`
	Name  string `json:"name"`
	Query string `json:"query"`
	Addr  string `json:"addr"`
}

// PlayDecision is the answer to a PlayRequest.
type PlayDecision struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	// Code is the refusal's machine-readable reason; empty when allowed.
	Code string `json:"code,omitempty"`
}

// Origin is one origin that holds a stream's publish.
type Origin struct {
	Name        string `json:"name"`
	RTMPAddress string `json:"rtmp_address"`
	// Role, when the directory says it, must be RoleOrigin: edges refuse
	// to pull from anything else.
	Role string `json:"role,omitempty"`
}

// RoleOrigin is the role of nodes that take publishes and serve edges.
const RoleOrigin = "origin"

// Node is one registered node, as listed by the control plane.
type Node struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	RTMPAddress string `json:"rtmp_address"`
	HTTPAddress string `json:"http_address"`
	Alive       bool   `json:"alive"`
}

// HeartbeatReply is the control plane's answer to a heartbeat.
type HeartbeatReply struct {
	// HeartbeatIntervalMS is the next heartbeat interval (0: unchanged).
	HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms"`
	// End lists publishes the relay must end now: their stream was
	// deleted or disabled, or its key rotated, since they started.
	End []EndOrder `json:"end,omitempty"`
	// Pulls, when not null, is the full set of RTSP pulls the origin must
	// run (see PullOrder); null (older control planes, other roles)
	// leaves the origin's assigned pulls as they are.
	Pulls []PullOrder `json:"pulls"`
}

// PublishDone tells the control plane that a publish ended.
type PublishDone struct {
	Node string `json:"node"`
	App  string `json:"app"`
	Name string `json:"name"`
	// StreamID and PublishID, when known (non-zero), are those the
	// publish's authorisation answered: the control plane then ends
	// exactly that publish.
	StreamID  int64 `json:"stream_id,omitempty"`
	PublishID int64 `json:"publish_id,omitempty"`
}

// ResolveRequest asks for the public name of the stream a publish of
// app/name is for (name itself, or the stream whose key name is).
type ResolveRequest struct {
	App  string `json:"app"`
	Name string `json:"name"`
}

// ResolveReply is the answer to a ResolveRequest.
type ResolveReply struct {
	App  string `json:"app"`
	Name string `json:"name"`
}

// DirectoryReply lists the alive origins that hold app/name, most recent
// publish first.
type DirectoryReply struct {
	App     string   `json:"app"`
	Name    string   `json:"name"`
	Origins []Origin `json:"origins"`
}

// NodeList is the answer to a node listing.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// Error is the error of every HTTP surface of the control plane (REST API,
// node API, hooks, concierge API): {"error": {"code", "message", "field",
// "id"}}. ID, when set, also appears in the control plane's log line.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	ID      string `json:"id,omitempty"`
}

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error Error `json:"error"`
}

// NewError builds an error body.
func NewError(code, msg, field string) ErrorBody {
	return ErrorBody{Error: Error{Code: code, Message: msg, Field: field}}
}

// NameTakenReply is the 409 answer to a registration under a live node's
// name: the error (code CodeNameTaken) and the node holding the name.
type NameTakenReply struct {
	Error  Error  `json:"error"`
	Holder Holder `json:"holder"`
}

// Holder is the live node that holds a name.
type Holder struct {
	Name          string     `json:"name"`
	Role          string     `json:"role"`
	RTMPAddress   string     `json:"rtmp_address"`
	HTTPAddress   string     `json:"http_address"`
	Host          string     `json:"host"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
}

// Error codes of the node API.
const (
	CodeNameTaken   = "name_taken"
	CodeUnknownNode = "unknown_node"
)
