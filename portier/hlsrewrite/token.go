package hlsrewrite

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Play tokens let a viewer read the playlists of a stream whose HLS is not
// public. A token is "STREAMID.EXP.SIG": SIG is base64url (no padding) of
// the first 16 bytes of HMAC-SHA256(secret, "portier-hls-token\x00" +
// STREAMID + "\x00" + EXP), EXP in Unix seconds. Any control-plane replica
// checks it without a database read; the API hands one out in play.hls.

// Errors of CheckToken.
var (
	ErrTokenMissing = errors.New("this stream's HLS needs a play token (?token=…): get a viewer URL from the stream's play.hls")
	ErrTokenInvalid = errors.New("play token does not match this stream")
	ErrTokenExpired = errors.New("play token has expired: get a fresh viewer URL from the stream's play.hls")
)

func tokenSig(secret string, id int64, exp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("portier-hls-token\x00" + strconv.FormatInt(id, 10) + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// IssueToken returns a play token for stream id valid until exp.
func IssueToken(secret string, id int64, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return strconv.FormatInt(id, 10) + "." + e + "." + tokenSig(secret, id, e)
}

// CheckToken checks a play token for stream id at now.
func CheckToken(secret string, id int64, tok string, now time.Time) error {
	if tok == "" {
		return ErrTokenMissing
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != strconv.FormatInt(id, 10) {
		return ErrTokenInvalid
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !hmac.Equal([]byte(parts[2]), []byte(tokenSig(secret, id, parts[1]))) {
		return ErrTokenInvalid
	}
	if now.Unix() > exp {
		return ErrTokenExpired
	}
	return nil
}
