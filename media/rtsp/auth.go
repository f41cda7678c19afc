package rtsp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// AuthRequest is what a client asked to publish or play. Its fields are
// those of rtmpserver.AuthRequest, in the same order, so that a relay
// converts one into the other (rtsp.AuthRequest(req)) and decides on both
// protocols with one function. Name may be a stream key: never log it.
type AuthRequest struct {
	// App and Name come from the URL path rtsp://host/APP/NAME.
	App  string
	Name string
	// RawQuery is the URL query (e.g. "key=abc"), passed through untouched.
	RawQuery string
	Addr     string // client's address (host:port)
	Protocol string // "rtsp"
}

// AuthResult is the answer to an AuthRequest, field for field
// rtmpserver.AuthResult.
type AuthResult struct {
	Allow bool
	// Name is the public stream name to publish under (when the key was
	// given as the name); empty means the requested name.
	Name string
	// Reason is shown to a refused client, in the RTSP status line.
	Reason string
	// Takeover lets a publish replace a live publisher of the stream.
	Takeover bool
	// Tag (publishes) is the authoriser's name for this publish: stored in
	// the hub's PublisherInfo and passed back to PublishDone.
	Tag string
}

// AuthorizeFunc decides on a publish or a play. It runs on the connection's
// goroutine and should answer within a few seconds. A refusal
// (Allow false) answers 403 Forbidden; an error answers 404 Not Found if it
// wraps ErrNotFound, 401 Unauthorized if it wraps ErrUnauthorized, and 503
// Service Unavailable otherwise (no decision: refused).
type AuthorizeFunc func(ctx context.Context, req AuthRequest) (AuthResult, error)

// Errors an AuthorizeFunc may wrap to choose the RTSP status.
var (
	ErrNotFound     = errors.New("rtsp: stream not found")
	ErrUnauthorized = errors.New("rtsp: credentials required")
)

// authStatus maps an authorisation error to its RTSP status and reason.
func authStatus(err error) (base.StatusCode, string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return base.StatusNotFound, "stream not found"
	case errors.Is(err, ErrUnauthorized):
		return base.StatusUnauthorized, "credentials required"
	}
	return base.StatusServiceUnavailable, "authorisation unavailable"
}

// splitPath splits an RTSP path "app/name" (gortsplib strips the leading
// slash and the query) into app and name. The name may contain slashes.
func splitPath(path string) (app, name string, err error) {
	path = strings.Trim(path, "/")
	app, name, ok := strings.Cut(path, "/")
	if !ok || app == "" || name == "" {
		return "", "", fmt.Errorf("rtsp: path %q: want /app/name", path)
	}
	return app, name, nil
}

// refusal builds an RTSP error response whose status line says why
// ("403 Forbidden: wrong key"), as ffmpeg prints it.
func refusal(code base.StatusCode, reason string) *base.Response {
	res := &base.Response{StatusCode: code}
	if reason != "" {
		msg := base.StatusMessages[code]
		if msg == "" {
			msg = "Error"
		}
		res.StatusMessage = msg + ": " + sanitizeReason(reason)
	}
	return res
}

func sanitizeReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
