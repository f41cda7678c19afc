package contract

import (
	"context"
	"net/url"
	"testing"
)

// nginx-rtmp repeats a session's arguments in every update: once the key
// was rotated, the update of a publish made with the old key is refused
// (nginx-rtmp drops the session), while one made with the new key goes on.
func TestNginxRTMPUpdateAfterKeyRotation(t *testing.T) {
	forEachStore(t, envOpts{}, func(t *testing.T, e *env) {
		old := "key=" + url.QueryEscape(e.key)
		if r := e.nginx("publish", "livestream", old); r.status != 200 {
			t.Fatalf("publish: %d", r.status)
		}
		if r := e.nginx("update", "livestream", old); r.status != 200 {
			t.Fatalf("update with the current key: %d", r.status)
		}
		rot, err := e.store.RotateStreamKey(context.Background(), e.stream.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.nginx("update", "livestream", old); r.status != 403 {
			t.Fatalf("update with the rotated key: %d, want 403", r.status)
		}
		if r := e.nginx("update", "livestream", "key="+url.QueryEscape(rot.PublishKey)); r.status != 200 {
			t.Fatalf("update with the new key: %d", r.status)
		}
	})
}
