package concierge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/concierge/wire"
)

// control is the concierge's HTTP client for the control plane.
type control struct {
	base  string
	token string
	http  *http.Client
}

// apiError is a non-2xx answer of the control plane.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("control plane answered %d %s: %s", e.Status, e.Code, e.Message)
}

func isCode(err error, code string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Code == code
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

func newControl(base, token string, hc *http.Client) (*control, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--control %q: want the control plane's base URL, e.g. http://control:8080", base)
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 60 * time.Second}}
	}
	return &control{base: strings.TrimRight(base, "/"), token: token, http: hc}, nil
}

func (c *control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil {
			ae.Code, ae.Message = e.Error.Code, e.Error.Message
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

type registerReq struct {
	Name        string            `json:"name"`
	Role        string            `json:"role"`
	RTMPAddress string            `json:"rtmp_address,omitempty"`
	HTTPAddress string            `json:"http_address,omitempty"`
	Host        string            `json:"host,omitempty"`
	Capacity    int               `json:"capacity"`
	Labels      map[string]string `json:"labels"`
	Version     string            `json:"version"`
}

type registerReply struct {
	HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms"`
	LeaseMS             int64 `json:"lease_ms"`
}

func (c *control) register(ctx context.Context, r registerReq) (registerReply, error) {
	var out registerReply
	err := c.do(ctx, http.MethodPost, "/internal/v1/nodes/register", r, &out)
	return out, err
}

type heartbeatReq struct {
	Load struct {
		Streams  int `json:"streams"`
		CostUsed int `json:"cost_used"`
	} `json:"load"`
}

func (c *control) heartbeat(ctx context.Context, name string, running, cost int) error {
	var hb heartbeatReq
	hb.Load.Streams, hb.Load.CostUsed = running, cost
	return c.do(ctx, http.MethodPost, "/internal/v1/nodes/"+url.PathEscape(name)+"/heartbeat", hb, nil)
}

func (c *control) assignments(ctx context.Context, name, after string, wait time.Duration) (wire.Assignment, error) {
	var a wire.Assignment
	q := "?after=" + url.QueryEscape(after) + "&wait_ms=" + strconv.FormatInt(wait.Milliseconds(), 10)
	err := c.do(ctx, http.MethodGet, fmt.Sprintf(wire.PathAssignments, url.PathEscape(name))+q, nil, &a)
	return a, err
}

func (c *control) statusBatch(ctx context.Context, name string, b wire.StatusBatch) (wire.StatusBatchAnswer, error) {
	var a wire.StatusBatchAnswer
	err := c.do(ctx, http.MethodPost, fmt.Sprintf(wire.PathStatusBatch, url.PathEscape(name)), b, &a)
	return a, err
}

func (c *control) drain(ctx context.Context, name string) ([]int64, error) {
	var a wire.DrainAnswer
	err := c.do(ctx, http.MethodPost, fmt.Sprintf(wire.PathDrain, url.PathEscape(name)), nil, &a)
	return a.Tasks, err
}

func (c *control) handoff(ctx context.Context, name string, ids []int64) ([]int64, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	var a wire.HandoffAnswer
	err := c.do(ctx, http.MethodGet, fmt.Sprintf(wire.PathHandoff, url.PathEscape(name))+"?tasks="+strings.Join(parts, ","), nil, &a)
	return a.Waiting, err
}
