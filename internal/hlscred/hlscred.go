// Package hlscred signs and checks the credential with which an HLS task
// writes to the HLS origin: it names the stream (the only prefix it may
// write under), the task and the task's fencing epoch, and is signed with
// the cluster token, so the origin checks it without asking anyone.
//
// Wire form (the Authorization header of every PUT and DELETE):
//
//	Authorization: Bearer hls1.STREAMID.TASKID.EPOCH.SIG
//
// SIG is the first 16 bytes, in hex, of HMAC-SHA256(cluster token,
// "portier-hls-put\x00STREAMID\x00TASKID\x00EPOCH"). The origin fences by
// the pair (TASKID, EPOCH): per stream it remembers the highest pair that
// wrote, and refuses (409) a write with a lower one. Task ids only grow and a
// failover raises the epoch, so a stale runner can never overwrite the
// current one's files.
package hlscred

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Prefix starts every credential (its version).
const Prefix = "hls1."

// Cred is what a valid credential says.
type Cred struct {
	StreamID int64
	TaskID   int64
	Epoch    int64
}

// Before reports whether c is fenced off by o: an older task, or the same
// task at an older epoch.
func (c Cred) Before(o Cred) bool {
	return c.TaskID < o.TaskID || (c.TaskID == o.TaskID && c.Epoch < o.Epoch)
}

// ErrInvalid is returned for any credential that is malformed or whose
// signature does not verify (callers answer 401 and say nothing more).
var ErrInvalid = errors.New("invalid HLS credential")

func sig(token string, c Cred) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("portier-hls-put\x00" + strconv.FormatInt(c.StreamID, 10) + "\x00" +
		strconv.FormatInt(c.TaskID, 10) + "\x00" + strconv.FormatInt(c.Epoch, 10)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Sign returns the credential for c, keyed with the cluster token.
func Sign(clusterToken string, c Cred) string {
	return Prefix + strconv.FormatInt(c.StreamID, 10) + "." + strconv.FormatInt(c.TaskID, 10) + "." +
		strconv.FormatInt(c.Epoch, 10) + "." + sig(clusterToken, c)
}

// Verify checks a credential (without "Bearer ") against the cluster token.
func Verify(clusterToken, s string) (Cred, error) {
	if clusterToken == "" || !strings.HasPrefix(s, Prefix) {
		return Cred{}, ErrInvalid
	}
	parts := strings.Split(s[len(Prefix):], ".")
	if len(parts) != 4 {
		return Cred{}, ErrInvalid
	}
	var n [3]int64
	for i := range 3 {
		v, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil || v < 1 {
			return Cred{}, ErrInvalid
		}
		n[i] = v
	}
	c := Cred{StreamID: n[0], TaskID: n[1], Epoch: n[2]}
	if !hmac.Equal([]byte(parts[3]), []byte(sig(clusterToken, c))) {
		return Cred{}, ErrInvalid
	}
	return c, nil
}
