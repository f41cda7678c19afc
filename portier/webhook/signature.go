package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery. See the package comment for how a receiver
// verifies one.
const (
	// HeaderSignature is "v1=" and the hex HMAC-SHA256, keyed with the
	// endpoint's secret, of the timestamp header's value, a '.', and the
	// body as sent.
	HeaderSignature = "Portier-Signature"
	// HeaderTimestamp is when the attempt was signed, in Unix seconds.
	HeaderTimestamp = "Portier-Timestamp"
	// HeaderEvent is the event's type (stream.live, …).
	HeaderEvent = "Portier-Event"
	// HeaderEventID is the event's id: the same on every attempt, so a
	// receiver can drop a retry of an event it has handled.
	HeaderEventID = "Portier-Event-Id"
	// HeaderAttempt is the attempt's number, from 1.
	HeaderAttempt = "Portier-Delivery-Attempt"
)

// SignatureVersion prefixes the signature (a later scheme gets v2 and may
// be sent beside it, comma-separated).
const SignatureVersion = "v1"

// DefaultTolerance is how old a delivery's timestamp Verify accepts.
const DefaultTolerance = 5 * time.Minute

// Sign is the value of HeaderSignature for body sent at timestamp ts
// (Unix seconds) to an endpoint with secret.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return SignatureVersion + "=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("webhook: no " + HeaderSignature + " or " + HeaderTimestamp + " header")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a delivery as a receiver would: h holds its headers, body
// the request body as received (unparsed). It accepts the delivery when one
// of the v1 signatures matches the HMAC of timestamp '.' body under secret
// (compared in constant time) and the timestamp is within tolerance of now
// (0: DefaultTolerance), which bounds replays.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig, tsText := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" || tsText == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q", ErrNoSignature, HeaderTimestamp, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := []byte(Sign(secret, ts, body))
	for s := range strings.SplitSeq(sig, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), want) {
			return nil
		}
	}
	return ErrBadSignature
}
