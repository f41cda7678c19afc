package controlclient

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/testutil"
)

// newReplica is one control-plane replica: a real HTTP server in front of a
// state shared with the other replicas (as Postgres is).
func newReplica(t *testing.T, h http.Handler) *testutil.Server { return testutil.StartServer(t, h) }

// Calls stay on the first replica while it answers, move to the second at
// once when it dies (no failed call, no backoff), stay there when the first
// comes back, and move on a 5xx too. With every replica down the call fails
// closed with ErrUnreachable.
func TestClientFailsOverBetweenReplicas(t *testing.T) {
	cp := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	a, b := newReplica(t, cp), newReplica(t, cp)
	c, err := NewClient(ClientParams{BaseURL: a.URL() + ", " + b.URL() + "/", Token: "secret", Timeout: time.Second, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := func(what string) time.Duration {
		t.Helper()
		t0 := time.Now()
		if _, err := c.Directory(ctx, "live", "foo"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(t0)
	}
	for range 3 {
		dir("with both replicas up")
	}
	if a.Calls() != 3 || b.Calls() != 0 {
		t.Fatalf("calls a=%d b=%d, want 3 0: the first replica serves while it answers", a.Calls(), b.Calls())
	}

	a.Kill()
	// The backoff is 1 s: a failover that waited for it would show.
	if d := dir("after the first replica died"); d > 500*time.Millisecond {
		t.Fatalf("failover took %v, want no backoff", d)
	}
	if c.Current() != b.URL() {
		t.Fatalf("current replica %s, want %s", c.Current(), b.URL())
	}
	a.Start()
	before := a.Calls()
	for range 3 {
		dir("after the first replica came back")
	}
	if a.Calls() != before {
		t.Fatal("calls went back to the first replica: the client must stick with the one that works")
	}

	// A 5xx moves on too; the answer comes from the other replica.
	fail := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	fail.fail5xx.Store(1 << 20)
	b.SetHandler(fail)
	dir("with the second replica answering 503")
	if c.Current() != a.URL() {
		t.Fatalf("current replica %s after a 503, want %s", c.Current(), a.URL())
	}
	b.SetHandler(cp)

	a.Kill()
	b.Kill()
	c2, _ := NewClient(ClientParams{BaseURL: a.URL() + "," + b.URL(), Token: "secret", Timeout: 200 * time.Millisecond, Backoff: time.Millisecond})
	_, err = c2.AuthorizePublish(ctx, nodewire.PublishRequest{App: "live", Name: "x", Query: "key=supersecret"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("publish with every replica down: %v, want ErrUnreachable (fail closed)", err)
	}
}

// An agent keeps heartbeating through a replica's death: the heartbeat that
// meets the dead replica is answered by the other one, so the node never
// counts as unregistered (an origin keeps accepting publishes).
func TestAgentHeartbeatsThroughReplicaKill(t *testing.T) {
	cp := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	a, b := newReplica(t, cp), newReplica(t, cp)
	c, err := NewClient(ClientParams{BaseURL: a.URL() + "," + b.URL(), Token: "secret", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ag := NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "edge-1", Role: "edge"},
		Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	heartbeats := func() int { cp.mu.Lock(); defer cp.mu.Unlock(); return len(cp.heartbeats) }
	testutil.Eventually(t, 5*time.Second, "heartbeats on the first replica", func() bool { return heartbeats() >= 3 && ag.Registered() })
	a.Kill()
	n := heartbeats()
	deadline := time.Now().Add(10 * time.Second)
	for heartbeats() < n+10 {
		if !ag.Registered() {
			t.Fatal("the agent counted as unregistered while a replica answered")
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d heartbeats after the kill", heartbeats()-n)
		}
		time.Sleep(testutil.PollInterval)
	}
	if b.Calls() == 0 {
		t.Fatal("the second replica got no call")
	}
	cp.mu.Lock()
	regs := cp.registers
	cp.mu.Unlock()
	if regs != 1 {
		t.Fatalf("%d registrations, want 1: the replicas share the registration", regs)
	}
}
