// Package controlclient is a node's client of the control plane's node API
// (registration, heartbeats, publish and play authorisation, the stream
// directory, the list of live origins) and the agent that keeps a node
// registered. The messages are internal/nodewire's, shared with the server.
package controlclient

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
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/replicas"
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
	Holder nodewire.Node
}

func (e *NameTakenError) Error() string {
	return "control plane refused the registration: " + e.Message
}

// ClientParams configures a Client.
type ClientParams struct {
	// BaseURL of the control plane, e.g. http://127.0.0.1:8080, or several
	// replicas' separated by commas: calls go to one replica and stay with
	// it while it answers; a connection error or a 5xx moves them to the
	// next at once (without waiting for the backoff).
	BaseURL string
	// Token is the cluster token sent as a bearer token (may be empty when
	// the control plane trusts loopback callers).
	Token string
	// HTTPClient defaults to a client without a global timeout (each call
	// has its own) on a transport of its own that keeps idleConns
	// connections per replica open between calls.
	HTTPClient *http.Client
	// Timeout of one attempt (default 3 s).
	Timeout time.Duration
	// Retries after a failed round (one attempt on every replica; default
	// 2), with exponential backoff starting at Backoff (default 100 ms).
	// Only transport errors and 5xx answers are retried.
	Retries int
	Backoff time.Duration
	// ObserveLatency, if set, is called after every answered attempt with
	// the operation ("register", "heartbeat", "publish_authorize",
	// "publish_done", "play_authorize", "directory", "nodes").
	ObserveLatency func(op string, d time.Duration)
	Logger         *slog.Logger
}

// Client calls the control plane's node API (/internal/v1). It is safe for
// concurrent use; its mutable state is the replica in use (an atomic in
// replicas.List) and its HTTP client.
type Client struct {
	p    ClientParams
	reps *replicas.List
	hc   *http.Client
	log  *slog.Logger
}

// idleConns is how many idle connections per replica a Client keeps: its
// heartbeat and the calls of a burst of publishes and plays.
const idleConns = 8

// NewClient validates p and builds a Client.
func NewClient(p ClientParams) (*Client, error) {
	reps, err := replicas.Parse(p.BaseURL)
	if err != nil {
		return nil, err
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
		// Not http.DefaultTransport: it keeps 2 idle connections per host
		// for the whole process, and portier run has several nodes calling
		// the same control plane every second, so most heartbeats dialled
		// a new connection (a TCP handshake and a TIME_WAIT socket each).
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = idleConns
		hc = &http.Client{Transport: t}
	}
	return &Client{p: p, reps: reps, hc: hc, log: p.Logger.With("component", "control-client")}, nil
}

// BaseURL lists the control plane's replicas, for logs (never carries
// secrets).
func (c *Client) BaseURL() string { return c.reps.String() }

// Current is the replica calls go to now, for logs (never carries secrets).
func (c *Client) Current() string {
	_, u := c.reps.Current()
	return RedactURL(u)
}

// HeartbeatReply is the control plane's answer to a heartbeat.
type HeartbeatReply struct {
	// Interval is the next heartbeat interval (0: unchanged).
	Interval time.Duration
	// End lists publishes the relay must end now: their stream was
	// deleted or disabled, or its key rotated, since they started.
	End []nodewire.EndOrder
	// Pulls, when not nil, is the full set of RTSP pulls the origin must
	// run (nodewire.HeartbeatReply.Pulls); nil leaves them as they are.
	Pulls []nodewire.PullOrder
}

// Register registers (or re-registers) the node. A *NameTakenError means
// a live node of another role or address holds the name.
func (c *Client) Register(ctx context.Context, n nodewire.NodeInfo) (nodewire.RegisterReply, error) {
	var r struct {
		nodewire.RegisterReply
		nodewire.NameTakenReply
	}
	status, err := c.do(ctx, "register", http.MethodPost, nodewire.PathRegister, n, &r, map[int]bool{http.StatusConflict: true})
	if err != nil {
		return nodewire.RegisterReply{}, err
	}
	if status == http.StatusConflict {
		msg := r.Error.Message
		if msg == "" {
			msg = fmt.Sprintf("node name %q is taken by another live node: give this node its own --name", n.Name)
		}
		h := r.Holder
		return nodewire.RegisterReply{}, &NameTakenError{Message: msg, Holder: nodewire.Node{Name: h.Name, Role: h.Role, RTMPAddress: h.RTMPAddress, HTTPAddress: h.HTTPAddress}}
	}
	return r.RegisterReply, nil
}

// Leave tells the control plane the node shuts down cleanly: if n is still
// the node registered under its name, the name is free at once.
func (c *Client) Leave(ctx context.Context, n nodewire.NodeInfo) error {
	_, err := c.do(ctx, "leave", http.MethodPost, nodewire.PathLeave, n, nil, nil)
	return err
}

// SendHeartbeat reports the node's load and publishes; it returns the next
// heartbeat interval (0 if the control plane did not say) and the
// publishes to end. ErrUnknownNode means register again.
func (c *Client) SendHeartbeat(ctx context.Context, name string, hb nodewire.Heartbeat) (HeartbeatReply, error) {
	if hb.Published == nil {
		hb.Published = []string{}
	}
	var r nodewire.HeartbeatReply
	status, err := c.do(ctx, "heartbeat", http.MethodPost, nodewire.PathHeartbeat(url.PathEscape(name)), hb, &r, map[int]bool{http.StatusNotFound: true})
	if err != nil {
		return HeartbeatReply{}, err
	}
	if status == http.StatusNotFound {
		return HeartbeatReply{}, ErrUnknownNode
	}
	return HeartbeatReply{Interval: time.Duration(r.HeartbeatIntervalMS) * time.Millisecond, End: r.End, Pulls: r.Pulls}, nil
}

// AuthorizePublish asks the control plane whether a publish may start. A
// refusal is a decision (Allow false, with the reason), not an error; an
// error means no decision could be obtained (fail closed).
func (c *Client) AuthorizePublish(ctx context.Context, req nodewire.PublishRequest) (nodewire.PublishDecision, error) {
	var d nodewire.PublishDecision
	status, err := c.do(ctx, "publish_authorize", http.MethodPost, nodewire.PathPublishAuthorize, req, &d, refusals)
	if err != nil {
		return nodewire.PublishDecision{}, err
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
	body := nodewire.PublishDone{Node: node, App: app, Name: name}
	if streamID > 0 {
		body.StreamID, body.PublishID = streamID, publishID
	}
	_, err := c.do(ctx, "publish_done", http.MethodPost, nodewire.PathPublishDone, body, nil, nil)
	return err
}

// AuthorizePlay asks whether a player may play a stream.
func (c *Client) AuthorizePlay(ctx context.Context, req nodewire.PlayRequest) (nodewire.PlayDecision, error) {
	var d nodewire.PlayDecision
	status, err := c.do(ctx, "play_authorize", http.MethodPost, nodewire.PathPlayAuthorize, req, &d, refusals)
	if err != nil {
		return nodewire.PlayDecision{}, err
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
	var r nodewire.ResolveReply
	status, err := c.do(ctx, "publish_resolve", http.MethodPost, nodewire.PathPublishResolve,
		nodewire.ResolveRequest{App: app, Name: name}, &r, map[int]bool{http.StatusNotFound: true})
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
func (c *Client) Directory(ctx context.Context, app, name string) ([]nodewire.Origin, error) {
	var r nodewire.DirectoryReply
	status, err := c.do(ctx, "directory", http.MethodGet, nodewire.PathDirectory(url.PathEscape(app), url.PathEscape(name)), nil, &r, map[int]bool{http.StatusNotFound: true})
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound || len(r.Origins) == 0 {
		return nil, ErrNotFound
	}
	return r.Origins, nil
}

// Nodes lists the registered nodes of a role.
func (c *Client) Nodes(ctx context.Context, role string) ([]nodewire.Node, error) {
	var r nodewire.NodeList
	_, err := c.do(ctx, "nodes", http.MethodGet, nodewire.PathNodes+"?role="+url.QueryEscape(role), nil, &r, nil)
	return r.Nodes, err
}

// LiveOrigins lists the origins the control plane considers alive.
func (c *Client) LiveOrigins(ctx context.Context) ([]nodewire.Node, error) {
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

// do runs one call with retries. Statuses in accept are returned with their
// decoded body; other 4xx are errors (not retried); 5xx and transport
// failures move to the next replica at once, and after a round over every
// replica are retried with backoff, then wrapped in ErrUnreachable.
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
	for round := 0; round <= c.p.Retries; round++ {
		if round > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, fmt.Errorf("%w: %s %s: %v (last error: %v)", ErrUnreachable, method, RedactURL(path), ctx.Err(), lastErr)
			case <-t.C:
			}
			backoff *= 2
		}
		start, _ := c.reps.Current()
		for k := 0; k < c.reps.Len(); k++ {
			i, base := c.reps.At(start + k)
			status, retry, err := c.once(ctx, op, method, base, path, body, out, accept)
			if err == nil {
				return status, nil
			}
			if !retry {
				return status, err
			}
			lastErr = err
			if ctx.Err() != nil {
				return 0, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
			}
			if c.reps.Failed(i) {
				_, next := c.reps.Current()
				c.log.Warn("control plane replica failed; moving to the next", "op", op,
					"from", RedactURL(base), "to", RedactURL(next), "err", err)
			}
		}
	}
	return 0, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
}

func (c *Client) once(ctx context.Context, op, method, base, path string, body []byte, out any, accept map[int]bool) (status int, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.p.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
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
		return 0, true, fmt.Errorf("%s %s%s: %v", method, RedactURL(base), RedactURL(path), err)
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
		return status, true, fmt.Errorf("%s %s%s: status %d%s", method, RedactURL(base), RedactURL(path), status, errorMessage(b))
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
	var e nodewire.ErrorBody
	if json.Unmarshal(b, &e) != nil || (e.Error.Code == "" && e.Error.Message == "") {
		return ""
	}
	return fmt.Sprintf(" (%s: %s)", e.Error.Code, e.Error.Message)
}

// RedactURL drops the query string and user info of a URL or path, where
// keys and tokens travel, so that it can be logged.
func RedactURL(s string) string { return replicas.Redact(s) }
