// Package cluster is a relay's view of the Portier cluster: a client for the
// control plane's node API (registration, heartbeats, publish and play
// authorisation, the stream directory, the list of live origins) and
// rendezvous hashing of stream paths over origins.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors returned by Client calls.
var (
	// ErrUnknownNode: the control plane does not know this node (404 on a
	// heartbeat); the node must register again.
	ErrUnknownNode = errors.New("control plane: unknown node")
	// ErrNotFound: the directory has no origin for the stream.
	ErrNotFound = errors.New("control plane: not found")
	// ErrUnreachable wraps every transport failure and 5xx answer, after the
	// retries: callers fail closed (publish) or fall back (pull) on it.
	ErrUnreachable = errors.New("control plane unreachable")
)

// NameTakenError is the control plane's refusal (409 name_taken) of a
// registration under a name that a live node of another role or address
// holds. It is final: the node must be given another name.
type NameTakenError struct {
	// Message names the clash and the fix, as the control plane wrote it.
	Message string
	// Holder is the live node that holds the name.
	Holder Node
}

func (e *NameTakenError) Error() string {
	return "control plane refused the registration: " + e.Message
}

// ClientParams configures a Client.
type ClientParams struct {
	// BaseURL of the control plane, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token is the cluster token sent as a bearer token (may be empty when
	// the control plane trusts loopback callers).
	Token string
	// HTTPClient defaults to a client without a global timeout (each call
	// has its own).
	HTTPClient *http.Client
	// Timeout of one attempt (default 3 s).
	Timeout time.Duration
	// Retries after a failed attempt (default 2), with exponential backoff
	// starting at Backoff (default 100 ms). Only transport errors and 5xx
	// answers are retried.
	Retries int
	Backoff time.Duration
	// ObserveLatency, if set, is called after every answered attempt with
	// the operation ("register", "heartbeat", "publish_authorize",
	// "publish_done", "play_authorize", "directory", "nodes").
	ObserveLatency func(op string, d time.Duration)
	Logger         *slog.Logger
}

// Client calls the control plane's node API (/internal/v1). It is safe for
// concurrent use and holds no mutable state besides its HTTP client.
type Client struct {
	p    ClientParams
	base *url.URL
	hc   *http.Client
	log  *slog.Logger
}

// NewClient validates p and builds a Client.
func NewClient(p ClientParams) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(p.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("control plane URL %q: want http(s)://host:port", RedactURL(p.BaseURL))
	}
	if p.Timeout <= 0 {
		p.Timeout = 3 * time.Second
	}
	if p.Retries < 0 {
		p.Retries = 0
	} else if p.Retries == 0 {
		p.Retries = 2
	}
	if p.Backoff <= 0 {
		p.Backoff = 100 * time.Millisecond
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	hc := p.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{p: p, base: u, hc: hc, log: p.Logger.With("component", "cluster-client")}, nil
}

// BaseURL is the control plane's address, for logs (never carries secrets).
func (c *Client) BaseURL() string { return RedactURL(c.base.String()) }

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
	CostUsed    int   `json:"cost_used"`
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
}

// PublishedStream is one publish an origin holds.
type PublishedStream struct {
	Path      string `json:"path"`
	StreamID  int64  `json:"stream_id"`
	PublishID int64  `json:"publish_id"`
}

// HeartbeatReply is the control plane's answer to a heartbeat.
type HeartbeatReply struct {
	// Interval is the next heartbeat interval (0: unchanged).
	Interval time.Duration
	// End lists publishes the relay must end now: their stream was
	// deleted or disabled, or its key rotated, since they started.
	End []EndOrder
}

// EndOrder tells a relay to end one publish.
type EndOrder struct {
	Path      string `json:"path"`
	StreamID  int64  `json:"stream_id"`
	PublishID int64  `json:"publish_id"`
	Reason    string `json:"reason"` // deleted, disabled, key_rotated
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

// Register registers (or re-registers) the node. A *NameTakenError means
// a live node of another role or address holds the name.
func (c *Client) Register(ctx context.Context, n NodeInfo) (RegisterReply, error) {
	var r struct {
		RegisterReply
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Holder Node `json:"holder"`
	}
	status, err := c.do(ctx, "register", http.MethodPost, "/internal/v1/nodes/register", n, &r, map[int]bool{http.StatusConflict: true})
	if err != nil {
		return RegisterReply{}, err
	}
	if status == http.StatusConflict {
		msg := r.Error.Message
		if msg == "" {
			msg = fmt.Sprintf("node name %q is taken by another live node: give this node its own --name", n.Name)
		}
		return RegisterReply{}, &NameTakenError{Message: msg, Holder: r.Holder}
	}
	return r.RegisterReply, nil
}

// Leave tells the control plane the node shuts down cleanly: if n is still
// the node registered under its name, the name is free at once.
func (c *Client) Leave(ctx context.Context, n NodeInfo) error {
	_, err := c.do(ctx, "leave", http.MethodPost, "/internal/v1/nodes/leave", n, nil, nil)
	return err
}

// SendHeartbeat reports the node's load and publishes; it returns the next
// heartbeat interval (0 if the control plane did not say) and the
// publishes to end. ErrUnknownNode means register again.
func (c *Client) SendHeartbeat(ctx context.Context, name string, hb Heartbeat) (HeartbeatReply, error) {
	if hb.Published == nil {
		hb.Published = []string{}
	}
	var r struct {
		HeartbeatIntervalMS int        `json:"heartbeat_interval_ms"`
		End                 []EndOrder `json:"end"`
	}
	status, err := c.do(ctx, "heartbeat", http.MethodPost, "/internal/v1/nodes/"+url.PathEscape(name)+"/heartbeat", hb, &r, map[int]bool{http.StatusNotFound: true})
	if err != nil {
		return HeartbeatReply{}, err
	}
	if status == http.StatusNotFound {
		return HeartbeatReply{}, ErrUnknownNode
	}
	return HeartbeatReply{Interval: time.Duration(r.HeartbeatIntervalMS) * time.Millisecond, End: r.End}, nil
}

// AuthorizePublish asks the control plane whether a publish may start. A
// refusal is a decision (Allow false, with the reason), not an error; an
// error means no decision could be obtained (fail closed).
func (c *Client) AuthorizePublish(ctx context.Context, req PublishRequest) (PublishDecision, error) {
	var d PublishDecision
	status, err := c.do(ctx, "publish_authorize", http.MethodPost, "/internal/v1/publish/authorize", req, &d, refusals)
	if err != nil {
		return PublishDecision{}, err
	}
	if status != http.StatusOK {
		d.Allow = false
	}
	if d.Allow && d.Name == "" {
		d.Name = req.Name
	}
	if d.Allow && d.App == "" {
		d.App = req.App
	}
	return d, nil
}

// PublishDone tells the control plane a publish ended (idempotent).
// streamID and publishID, when known (non-zero), are those its
// authorisation answered: the control plane then ends exactly that publish.
func (c *Client) PublishDone(ctx context.Context, node, app, name string, streamID, publishID int64) error {
	body := map[string]any{"node": node, "app": app, "name": name}
	if streamID > 0 {
		body["stream_id"], body["publish_id"] = streamID, publishID
	}
	_, err := c.do(ctx, "publish_done", http.MethodPost, "/internal/v1/publish/done", body, nil, nil)
	return err
}

// AuthorizePlay asks whether a player may play a stream.
func (c *Client) AuthorizePlay(ctx context.Context, req PlayRequest) (PlayDecision, error) {
	var d PlayDecision
	status, err := c.do(ctx, "play_authorize", http.MethodPost, "/internal/v1/play/authorize", req, &d, refusals)
	if err != nil {
		return PlayDecision{}, err
	}
	if status != http.StatusOK {
		d.Allow = false
	}
	return d, nil
}

// ResolvePublishName returns the public name of the stream a publish of
// app/name is for: name itself, or the name of the stream whose key name is
// (OBS style). ErrNotFound for an unknown stream.
func (c *Client) ResolvePublishName(ctx context.Context, app, name string) (string, error) {
	var r struct {
		Name string `json:"name"`
	}
	status, err := c.do(ctx, "publish_resolve", http.MethodPost, "/internal/v1/publish/resolve",
		map[string]string{"app": app, "name": name}, &r, map[int]bool{http.StatusNotFound: true})
	if err != nil {
		return "", err
	}
	if status == http.StatusNotFound || r.Name == "" {
		return "", ErrNotFound
	}
	return r.Name, nil
}

// Directory lists the live origins holding app/name, most recent first.
// ErrNotFound when nobody holds it.
func (c *Client) Directory(ctx context.Context, app, name string) ([]Origin, error) {
	var r struct {
		Origins []Origin `json:"origins"`
	}
	status, err := c.do(ctx, "directory", http.MethodGet, "/internal/v1/directory/"+url.PathEscape(app)+"/"+url.PathEscape(name), nil, &r, map[int]bool{http.StatusNotFound: true})
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound || len(r.Origins) == 0 {
		return nil, ErrNotFound
	}
	return r.Origins, nil
}

// Nodes lists the registered nodes of a role.
func (c *Client) Nodes(ctx context.Context, role string) ([]Node, error) {
	var r struct {
		Nodes []Node `json:"nodes"`
	}
	_, err := c.do(ctx, "nodes", http.MethodGet, "/internal/v1/nodes?role="+url.QueryEscape(role), nil, &r, nil)
	return r.Nodes, err
}

// LiveOrigins lists the origins the control plane considers alive.
func (c *Client) LiveOrigins(ctx context.Context) ([]Node, error) {
	nodes, err := c.Nodes(ctx, "origin")
	if err != nil {
		return nil, err
	}
	live := nodes[:0]
	for _, n := range nodes {
		if n.Alive && n.RTMPAddress != "" {
			live = append(live, n)
		}
	}
	return live, nil
}

// refusals are the statuses whose body is a decision, not a failure.
var refusals = map[int]bool{http.StatusForbidden: true, http.StatusNotFound: true, http.StatusUnauthorized: false}

// apiError is the control plane's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// do runs one call with retries. Statuses in accept are returned with their
// decoded body; other 4xx are errors (not retried); 5xx and transport
// failures are retried, then wrapped in ErrUnreachable.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any, accept map[int]bool) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, fmt.Errorf("encode %s: %w", RedactURL(path), err)
		}
	}
	backoff := c.p.Backoff
	var lastErr error
	for attempt := 0; attempt <= c.p.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, fmt.Errorf("%w: %s %s: %v", ErrUnreachable, method, RedactURL(path), ctx.Err())
			case <-t.C:
			}
			backoff *= 2
		}
		status, retry, err := c.once(ctx, op, method, path, body, out, accept)
		if err == nil {
			return status, nil
		}
		if !retry {
			return status, err
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return 0, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
}

func (c *Client) once(ctx context.Context, op, method, path string, body []byte, out any, accept map[int]bool) (status int, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.p.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return 0, false, fmt.Errorf("build request %s: %w", RedactURL(path), err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.p.Token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error carries the URL; report only method and path.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, true, fmt.Errorf("%s %s: %v", method, RedactURL(path), err)
	}
	defer resp.Body.Close()
	if c.p.ObserveLatency != nil {
		c.p.ObserveLatency(op, time.Since(start))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, true, fmt.Errorf("%s %s: read answer: %v", method, RedactURL(path), err)
	}
	status = resp.StatusCode
	switch {
	case status >= 500:
		return status, true, fmt.Errorf("%s %s: status %d%s", method, RedactURL(path), status, errorMessage(b))
	case status == http.StatusOK || status == http.StatusCreated || accept[status]:
		if out != nil && len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil && status < 300 {
				return status, false, fmt.Errorf("%s %s: decode answer: %w", method, RedactURL(path), err)
			}
		}
		return status, false, nil
	case status >= 200 && status < 300:
		return status, false, nil
	default:
		return status, false, fmt.Errorf("%s %s: status %d%s", method, RedactURL(path), status, errorMessage(b))
	}
}

func errorMessage(b []byte) string {
	var e apiError
	if json.Unmarshal(b, &e) != nil || (e.Error.Code == "" && e.Error.Message == "") {
		return ""
	}
	return fmt.Sprintf(" (%s: %s)", e.Error.Code, e.Error.Message)
}

// RedactURL drops the query string and user info of a URL or path, where
// keys and tokens travel, so that it can be logged.
func RedactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		s = u.String()
	}
	return s
}
