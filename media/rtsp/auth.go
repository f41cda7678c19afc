package rtsp

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// AuthKind says whether a client wants to publish or to play.
type AuthKind uint8

// Authorisation kinds.
const (
	AuthPublish AuthKind = iota + 1
	AuthPlay
)

func (k AuthKind) String() string {
	if k == AuthPublish {
		return "publish"
	}
	return "play"
}

// AuthRequest is what the server knows about a client that wants to publish
// or play, as the control plane's authorize calls take it.
type AuthRequest struct {
	Kind AuthKind
	// App and Name come from the URL path rtsp://host/APP/NAME. Name may be
	// the stream key itself (as RTMP users paste it); never log it.
	App  string
	Name string
	// RawQuery is the URL query (e.g. "key=abc"), passed through untouched.
	RawQuery string
	Query    url.Values
	// Addr is the client's address (host:port).
	Addr     string
	Protocol string // "rtsp"
}

// AuthResult is the answer to an AuthRequest.
type AuthResult struct {
	Allow bool
	// App and Name, when set, replace the request's: the public stream
	// name to publish under when the key was given as the name.
	App  string
	Name string
	// Takeover lets the publish replace a live publisher of the stream.
	Takeover bool
	// Reason says why a request was refused (sent to the client).
	Reason string
	// NotFound: the stream is unknown (RTSP 404) rather than forbidden (403).
	NotFound bool
	// Unauthorized: credentials are missing (RTSP 401) rather than wrong.
	Unauthorized bool
}

// AuthorizeFunc decides on publishes and plays. It is called on the
// connection's goroutine and should answer within a few seconds.
type AuthorizeFunc func(ctx context.Context, req AuthRequest) AuthResult

// status maps a refusal to its RTSP status.
func (r AuthResult) status() base.StatusCode {
	switch {
	case r.NotFound:
		return base.StatusNotFound
	case r.Unauthorized:
		return base.StatusUnauthorized
	}
	return base.StatusForbidden
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
		res.StatusMessage = msg + ": " + sanitizeHeader(reason)
	}
	return res
}

func sanitizeHeader(s string) string {
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
