package concierge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/testutil"
)

// fakeReplica is one control-plane replica for the client's failover
// tests: a real HTTP server whose behaviour the test switches.
type fakeReplica struct {
	*testutil.Server
	mode atomic.Value // "ok", "503", "409", "hang"
}

func newFakeReplica(t *testing.T, version string) *fakeReplica {
	f := &fakeReplica{}
	f.mode.Store("ok")
	f.Server = testutil.StartServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f.mode.Load().(string) {
		case "503":
			http.Error(w, `{"error":{"code":"unavailable","message":"database down"}}`, http.StatusServiceUnavailable)
			return
		case "409":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"name_taken","message":"taken"}}`))
			return
		case "hang":
			// Read the body first: the server notices the client going
			// (and cancels the context) only once the body is read.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if strings.HasSuffix(r.URL.Path, "/assignments") && r.URL.Query().Get("after") == version {
			// A long poll with nothing new: held until the client goes
			// (or the replica dies).
			<-r.Context().Done()
			return
		}
		json.NewEncoder(w).Encode(wire.Assignment{Version: version})
	}))
	return f
}

// A concierge's calls stay with the replica that answers, move on at once
// when it dies (also in the middle of a long poll), on a 5xx and when it
// hangs past the attempt bound; a 4xx is a decision and does not move.
func TestControlFailsOverBetweenReplicas(t *testing.T) {
	a, b := newFakeReplica(t, "v1"), newFakeReplica(t, "v2")
	c, err := newControl(a.URL()+","+b.URL(), "tok", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.attempt = 300 * time.Millisecond
	ctx := context.Background()
	if err := c.heartbeat(ctx, "w1", wire.Heartbeat{}); err != nil || a.Calls() != 1 || b.Calls() != 0 {
		t.Fatalf("heartbeat: %v (calls a=%d b=%d, want 1 0)", err, a.Calls(), b.Calls())
	}

	// A 4xx is the control plane's answer: no failover.
	a.mode.Store("409")
	if _, err := c.register(ctx, registerReq{Name: "w1"}); !isStatus(err, http.StatusConflict) || b.Calls() != 0 {
		t.Fatalf("register on 409: %v (b calls %d), want the 409 and no failover", err, b.Calls())
	}
	// A 5xx moves to the next replica within the call.
	a.mode.Store("503")
	if err := c.heartbeat(ctx, "w1", wire.Heartbeat{}); err != nil || c.current() != b.URL() {
		t.Fatalf("heartbeat on 503: %v (current %s)", err, c.current())
	}
	a.mode.Store("ok")

	// A long poll held by b when b dies carries on at a, in the same call.
	got := make(chan error, 1)
	go func() {
		asg, err := c.assignments(ctx, "w1", "v2", 20*time.Second)
		if err == nil && asg.Version != "v1" {
			err = &apiError{Message: "version " + asg.Version}
		}
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.Calls() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	b.Kill()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("long poll across the kill: %v", err)
		}
		t.Logf("long poll moved to the other replica %v after the kill", time.Since(t0).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not move to the live replica")
	}

	// A replica that accepts but never answers counts as failed after the
	// attempt bound.
	a2, b2 := newFakeReplica(t, "v1"), newFakeReplica(t, "v1")
	a2.mode.Store("hang")
	c2, _ := newControl(a2.URL()+","+b2.URL(), "tok", nil, nil)
	c2.attempt = 300 * time.Millisecond
	if err := c2.heartbeat(ctx, "w1", wire.Heartbeat{}); err != nil {
		t.Fatalf("heartbeat past a hung replica: %v", err)
	}
	// Every replica down: the error says so.
	a2.Kill()
	b2.Kill()
	if err := c2.heartbeat(ctx, "w1", wire.Heartbeat{}); err == nil || !strings.Contains(err.Error(), "/heartbeat") {
		t.Fatalf("heartbeat with every replica down: %v", err)
	}
}

func TestNewControlRefusesBadLists(t *testing.T) {
	for _, in := range []string{"", "control:8080", "http://a:1,http://a:1", "http://a:1,,ftp://b"} {
		if _, err := newControl(in, "", nil, nil); err == nil || !strings.Contains(err.Error(), "--control") {
			t.Errorf("newControl(%q) = %v, want an error naming --control", in, err)
		}
	}
}
