package nodewire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
)

// InternalPlaySigQuery is the query parameter that proves an
// InternalPlayQuery marker comes from the cluster: see InternalPlaySig.
const InternalPlaySigQuery = "portier_sig"

// InternalPlaySig is the proof that a play of path (APP/NAME) marked
// internal with typ was issued by the cluster: an HMAC-SHA256 of the path
// and type keyed with the cluster token. The control plane puts it into
// task input URLs (which end up in process lists and supervisord files)
// instead of the token itself; a relay that knows the token checks it.
// The proof is bound to one stream and type, so a leaked one hides
// players of that stream only. Empty when there is no token.
func InternalPlaySig(clusterToken, path, typ string) string {
	if clusterToken == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(clusterToken))
	m.Write([]byte("portier-internal-play\x00" + path + "\x00" + typ))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// InternalPlayURLQuery is the query string (without "?") that marks a play
// of path as the system's own, of type typ, with its proof.
func InternalPlayURLQuery(clusterToken, path, typ string) string {
	q := InternalPlayQuery + "=" + url.QueryEscape(typ)
	if sig := InternalPlaySig(clusterToken, path, typ); sig != "" {
		q += "&" + InternalPlaySigQuery + "=" + sig
	}
	return q
}

// IsInternalPlay reports whether the query of a play of path marks it as
// the system's own with a valid proof. A marker without a valid proof is
// ignored: the player counts as a viewer (it is not refused).
func IsInternalPlay(clusterToken, path string, q url.Values) bool {
	typ := q.Get(InternalPlayQuery)
	if typ == "" || clusterToken == "" {
		return false
	}
	got, err := hex.DecodeString(q.Get(InternalPlaySigQuery))
	if err != nil || len(got) == 0 {
		return false
	}
	want, _ := hex.DecodeString(InternalPlaySig(clusterToken, path, typ))
	return hmac.Equal(got, want)
}
