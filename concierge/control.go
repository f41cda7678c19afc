package concierge

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
	"strconv"
	"strings"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/replicas"
)

// control is the concierge's HTTP client for the control plane's replicas:
// a call goes to the replica in use and, on a connection error or a 5xx,
// to the next one at once (each replica once per call); the replica that
// answers stays in use. Its mutable state is the replica in use, an atomic
// in replicas.List.
type control struct {
	reps  *replicas.List
	token string
	http  *http.Client
	log   *slog.Logger
	// attempt bounds one attempt of a short call, so that a replica that
	// does not answer (a partition, a hung process) leaves time for the
	// next one within the caller's deadline.
	attempt time.Duration
}

// longPollSlack is how much longer than its wait a long poll may take
// before the replica counts as failed.
const longPollSlack = 10 * time.Second

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

func newControl(base, token string, hc *http.Client, log *slog.Logger) (*control, error) {
	reps, err := replicas.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("--control %q: %v; want the control plane's base URL, or several replicas' separated by commas, e.g. http://control-0:8080,http://control-1:8080", replicas.Redact(base), err)
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 60 * time.Second}}
	}
	if log == nil {
		log = slog.Default()
	}
	return &control{reps: reps, token: token, http: hc, log: log, attempt: 3 * time.Second}, nil
}

// current is the replica in use, for logs.
func (c *control) current() string {
	_, u := c.reps.Current()
	return replicas.Redact(u)
}

// do runs one call with the short-call attempt bound.
func (c *control) do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, c.attempt, method, path, in, out)
}

// call tries every replica once, from the one in use, each attempt bounded
// by attempt (and by ctx). An answer other than a 5xx ends the call: it is
// the control plane's decision, which any replica would repeat.
func (c *control) call(ctx context.Context, attempt time.Duration, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	start, _ := c.reps.Current()
	var err error
	for k := 0; k < c.reps.Len(); k++ {
		i, base := c.reps.At(start + k)
		var retry bool
		retry, err = c.once(ctx, attempt, method, base, path, body, out)
		if !retry || ctx.Err() != nil {
			return err
		}
		if c.reps.Failed(i) {
			_, next := c.reps.Current()
			c.log.Warn("control plane replica failed; moving to the next", "from", replicas.Redact(base), "to", replicas.Redact(next), "err", err)
		}
	}
	return err
}

// once makes one attempt on one replica; retry says the replica failed (a
// transport error or a 5xx) and the next one may answer.
func (c *control) once(ctx context.Context, attempt time.Duration, method, base, path string, body []byte, out any) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, attempt)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL: the query may carry state
		}
		return true, fmt.Errorf("%s %s%s: %w", method, replicas.Redact(base), replicas.Redact(path), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return true, fmt.Errorf("%s %s%s: %w", method, replicas.Redact(base), replicas.Redact(path), err)
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
		return resp.StatusCode >= 500, ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, fmt.Errorf("%s %s: bad answer: %w", method, replicas.Redact(path), err)
		}
	}
	return false, nil
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

// heartbeat posts hb (the load and the host's figures) to the node API.
func (c *control) heartbeat(ctx context.Context, name string, hb wire.Heartbeat) error {
	return c.do(ctx, http.MethodPost, "/internal/v1/nodes/"+url.PathEscape(name)+"/heartbeat", hb, nil)
}

func (c *control) assignments(ctx context.Context, name, after string, wait time.Duration) (wire.Assignment, error) {
	var a wire.Assignment
	q := "?after=" + url.QueryEscape(after) + "&wait_ms=" + strconv.FormatInt(wait.Milliseconds(), 10)
	err := c.call(ctx, wait+longPollSlack, http.MethodGet, fmt.Sprintf(wire.PathAssignments, url.PathEscape(name))+q, nil, &a)
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

func (c *control) recordings(ctx context.Context, name string, r wire.RecordingsReport) (wire.RecordingsAnswer, error) {
	var out wire.RecordingsAnswer
	err := c.do(ctx, http.MethodPost, fmt.Sprintf(wire.PathRecordings, url.PathEscape(name)), r, &out)
	return out, err
}
