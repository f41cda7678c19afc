// Package httpserve builds the HTTP servers of every Portier listener with
// the same defences against slow and idle clients, and lets streaming
// responses (HTTP-FLV) opt out of the whole-response write deadline.
package httpserve

import (
	"net/http"
	"time"
)

// Timeouts bound how long a client may take. Zero fields select the
// defaults of DefaultTimeouts.
type Timeouts struct {
	// ReadHeader bounds reading the request line and headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included: a drip-fed
	// body is cut here.
	Read time.Duration
	// Write bounds writing the response (from the end of the request's
	// headers). Streaming responses lift it with Stream.
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts are generous for the API, the UI, hooks and segment
// downloads, and short enough that idle or drip-fed connections do not
// accumulate.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}
}

// WithDefaults fills zero fields from DefaultTimeouts.
func (t Timeouts) WithDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.ReadHeader <= 0 {
		t.ReadHeader = min(d.ReadHeader, t.Read)
		if t.ReadHeader <= 0 {
			t.ReadHeader = d.ReadHeader
		}
	}
	if t.Read <= 0 {
		t.Read = d.Read
	}
	if t.Write <= 0 {
		t.Write = d.Write
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	return t
}

// NewServer returns an http.Server for h with the timeouts t (defaults for
// zero fields).
func NewServer(h http.Handler, t Timeouts) *http.Server {
	t = t.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
	}
}

// Stream marks w as a long-lived streaming response: it clears the
// connection's read deadline (the server's background read would
// otherwise cancel the request when Read passes) and its write deadline.
// The handler must then set a deadline before each write itself (with
// http.ResponseController), so a viewer that stops reading is still cut.
func Stream(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	return rc.SetWriteDeadline(time.Time{})
}

// LongPoll gives a response that waits up to wait before it writes (a long
// poll) the time it needs, whatever the server's timeouts: it clears the
// read deadline (whose expiry would cancel the request's context) and sets
// the write deadline to wait plus a margin for the answer itself.
func LongPoll(w http.ResponseWriter, wait time.Duration) error {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	return rc.SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
}
