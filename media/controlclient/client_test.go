package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/internal/nodewire"
)

// controlPlane is a minimal implementation of contract A for the client's
// unit tests (the end-to-end tests use the real control plane).
type controlPlane struct {
	mu         sync.Mutex
	nodes      map[string]nodewire.NodeInfo
	heartbeats []nodewire.Heartbeat
	registers  int
	fail5xx    atomic.Int32 // answer 503 this many times
}

func (cp *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := cp.fail5xx.Load(); n > 0 {
		cp.fail5xx.Add(-1)
		http.Error(w, `{"error":{"code":"unavailable","message":"try later"}}`, http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Authorization") != "Bearer secret" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/internal/v1/nodes/register":
		var n nodewire.NodeInfo
		json.NewDecoder(r.Body).Decode(&n)
		cp.nodes[n.Name] = n
		cp.registers++
		reply(200, map[string]any{"name": n.Name, "heartbeat_interval_ms": 20, "lease_ms": 100})
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/internal/v1/nodes/"), "/heartbeat")
		if _, ok := cp.nodes[name]; !ok {
			reply(404, map[string]any{"error": map[string]string{"code": "unknown_node"}})
			return
		}
		var hb nodewire.Heartbeat
		json.NewDecoder(r.Body).Decode(&hb)
		cp.heartbeats = append(cp.heartbeats, hb)
		reply(200, map[string]any{"heartbeat_interval_ms": 20})
	case r.URL.Path == "/internal/v1/publish/authorize":
		var req nodewire.PublishRequest
		json.NewDecoder(r.Body).Decode(&req)
		switch {
		case req.Name == "KEY123":
			reply(200, map[string]any{"allow": true, "app": "live", "name": "foo", "stream_id": 7})
		case req.Query == "key=good":
			reply(200, map[string]any{"allow": true, "app": "live", "name": req.Name, "stream_id": 7})
		default:
			reply(403, map[string]any{"allow": false, "reason": "wrong key"})
		}
	case r.URL.Path == "/internal/v1/directory/live/foo":
		reply(200, map[string]any{"app": "live", "name": "foo", "origins": []nodewire.Origin{{Name: "o1", RTMPAddress: "127.0.0.1:1"}}})
	case strings.HasPrefix(r.URL.Path, "/internal/v1/directory/"):
		reply(404, map[string]any{"error": map[string]string{"code": "not_found"}})
	case r.URL.Path == "/internal/v1/nodes":
		reply(200, map[string]any{"nodes": []nodewire.Node{{Name: "o1", Role: "origin", RTMPAddress: "a:1", Alive: true}, {Name: "o2", Role: "origin", RTMPAddress: "b:1", Alive: false}}})
	default:
		http.NotFound(w, r)
	}
}

func newTestClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientParams{BaseURL: srv.URL, Token: "secret", Timeout: time.Second, Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientCalls(t *testing.T) {
	cp := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	c := newTestClient(t, cp)
	ctx := context.Background()

	d, err := c.AuthorizePublish(ctx, nodewire.PublishRequest{App: "live", Name: "KEY123"})
	if err != nil || !d.Allow || d.Name != "foo" || d.StreamID != 7 {
		t.Fatalf("key as name: %+v %v", d, err)
	}
	d, err = c.AuthorizePublish(ctx, nodewire.PublishRequest{App: "live", Name: "bar", Query: "key=bad"})
	if err != nil || d.Allow || d.Reason != "wrong key" {
		t.Fatalf("wrong key: %+v %v", d, err)
	}
	origins, err := c.Directory(ctx, "live", "foo")
	if err != nil || len(origins) != 1 || origins[0].RTMPAddress != "127.0.0.1:1" {
		t.Fatalf("directory: %+v %v", origins, err)
	}
	if _, err := c.Directory(ctx, "live", "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("directory of unknown stream: %v, want ErrNotFound", err)
	}
	live, err := c.LiveOrigins(ctx)
	if err != nil || len(live) != 1 || live[0].Name != "o1" {
		t.Fatalf("live origins: %+v %v", live, err)
	}
	if _, err := c.SendHeartbeat(ctx, "ghost", nodewire.Heartbeat{}); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("heartbeat of unknown node: %v", err)
	}
	// 5xx answers are retried.
	cp.fail5xx.Store(2)
	if _, err := c.Directory(ctx, "live", "foo"); err != nil {
		t.Fatalf("directory after two 503s: %v", err)
	}
	cp.fail5xx.Store(10)
	if _, err := c.Directory(ctx, "live", "foo"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("directory after persistent 503s: %v, want ErrUnreachable", err)
	}
	cp.fail5xx.Store(0)
}

func TestClientUnreachableFailsClosed(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := NewClient(ClientParams{BaseURL: url, Timeout: 200 * time.Millisecond, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AuthorizePublish(context.Background(), nodewire.PublishRequest{App: "live", Name: "x", Query: "key=supersecret"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "supersecret") {
		t.Fatalf("error leaks the key: %v", err)
	}
}

func TestAgentReregistersAfter404(t *testing.T) {
	cp := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	c := newTestClient(t, cp)
	a := NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "origin-1", Role: "origin"},
		Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{Published: []string{"live/foo"}} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	testutil.Eventually(t, 5*time.Second, "the condition", func() bool { cp.mu.Lock(); defer cp.mu.Unlock(); return len(cp.heartbeats) >= 2 })
	if !a.Registered() {
		t.Fatal("agent not registered after heartbeats")
	}
	cp.mu.Lock()
	if got := cp.heartbeats[0].Published; len(got) != 1 || got[0] != "live/foo" {
		t.Fatalf("published = %v", got)
	}
	delete(cp.nodes, "origin-1") // control plane forgets the node
	cp.mu.Unlock()
	testutil.Eventually(t, 5*time.Second, "the condition", func() bool { cp.mu.Lock(); defer cp.mu.Unlock(); return cp.registers >= 2 })
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rtmp://h:1935/live/foo?key=abc": "rtmp://h:1935/live/foo",
		"/internal/v1/x?token=t#f":       "/internal/v1/x",
		"http://user:pass@host:1/p?q=1":  "http://host:1/p",
		"http://127.0.0.1:8080":          "http://127.0.0.1:8080",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
