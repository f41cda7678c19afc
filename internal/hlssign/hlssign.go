// Package hlssign signs and checks the URLs viewers use to fetch HLS
// playlists and segments from CDN edges. The control plane's playlist
// rewriter signs; edges verify locally, without asking anyone.
//
// A signature covers one stream's prefix ("/hls/s/STREAMID/") until an
// expiry, so one signature serves every playlist and segment of the stream
// for one viewer and the segment URIs of a playlist stay stable while it is
// reloaded. Query parameters of a signed URL:
//
//	exp  expiry, Unix seconds
//	sig  base64url (no padding) of the first 16 bytes of
//	     HMAC-SHA256(secret, "portier-hls-play\x00" + exp + "\x00" + prefix);
//	     checked by `portier cdn-edge`
//	md5  base64url (no padding) of MD5(exp + prefix + " " + secret), the
//	     form nginx's secure_link module checks, for nginx edges:
//	       secure_link $arg_md5,$arg_exp;
//	       secure_link_md5 "$arg_exp$hls_prefix SECRET";
//
// The secret is derived from the cluster token (Secret), so an nginx edge
// can be given the play secret without the cluster token itself.
package hlssign

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Query parameter names of a signed URL.
const (
	ParamExpires = "exp"
	ParamSig     = "sig"
	ParamMD5     = "md5"
)

// PathPrefix starts every HLS object path on the origin and the edges.
const PathPrefix = "/hls/s/"

// Errors Verify returns. Edges answer 403 to both and say which.
var (
	ErrMissing = errors.New("hls: URL is not signed (exp and sig required)")
	ErrExpired = errors.New("hls: signed URL has expired")
	ErrInvalid = errors.New("hls: URL signature does not match")
)

// Secret derives the play secret from the cluster token.
func Secret(clusterToken string) string {
	m := hmac.New(sha256.New, []byte(clusterToken))
	m.Write([]byte("portier-hls-play-secret"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// StreamPrefix is the path prefix of one stream's HLS objects.
func StreamPrefix(streamID int64) string {
	return PathPrefix + strconv.FormatInt(streamID, 10) + "/"
}

// PrefixOf returns the stream prefix of an HLS object path
// ("/hls/s/42/720p/1.ts" → "/hls/s/42/"), or false when path is not under
// a stream prefix.
func PrefixOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", false
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return PathPrefix + id + "/", true
}

func hmacSig(secret, prefix, exp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("portier-hls-play\x00" + exp + "\x00" + prefix))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// NginxMD5 is the md5 parameter nginx's secure_link checks.
func NginxMD5(secret, prefix, exp string) string {
	sum := md5.Sum([]byte(exp + prefix + " " + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Sign returns the query parameters that let a viewer fetch anything under
// prefix until exp.
func Sign(secret, prefix string, exp time.Time) url.Values {
	e := strconv.FormatInt(exp.Unix(), 10)
	return url.Values{
		ParamExpires: {e},
		ParamSig:     {hmacSig(secret, prefix, e)},
		ParamMD5:     {NginxMD5(secret, prefix, e)},
	}
}

// Verify checks that q signs path (through its stream prefix) at now.
func Verify(secret, path string, q url.Values, now time.Time) error {
	e, s := q.Get(ParamExpires), q.Get(ParamSig)
	if e == "" || s == "" {
		return ErrMissing
	}
	prefix, ok := PrefixOf(path)
	if !ok {
		return ErrInvalid
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return ErrInvalid
	}
	if !hmac.Equal([]byte(s), []byte(hmacSig(secret, prefix, e))) {
		return ErrInvalid
	}
	if now.Unix() > exp {
		return ErrExpired
	}
	return nil
}

// Strip removes the signature parameters from q (for cache keys and for
// requests to the origin).
func Strip(q url.Values) {
	q.Del(ParamExpires)
	q.Del(ParamSig)
	q.Del(ParamMD5)
}
