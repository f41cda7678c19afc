package controlclient

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/internal/testutil"
)

// Every heartbeat carries the node's version, uptime, CPU and memory.
func TestAgentHeartbeatCarriesHostStats(t *testing.T) {
	cp := &controlPlane{nodes: map[string]nodewire.NodeInfo{}}
	c := newTestClient(t, cp)
	a := NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "relay-1", Role: "origin", Version: "v1.2.3"},
		Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{} }, DefaultInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, "a heartbeat", func() bool { cp.mu.Lock(); defer cp.mu.Unlock(); return len(cp.heartbeats) >= 1 })
	cp.mu.Lock()
	h := cp.heartbeats[0].Host
	cp.mu.Unlock()
	if h == nil || h.Version != "v1.2.3" || h.CPUs < 1 || h.UptimeSeconds < 0 {
		t.Fatalf("heartbeat host %+v; want version v1.2.3 and the CPU count", h)
	}
	if runtime.GOOS == "linux" && (h.MemoryTotalBytes <= 0 || h.ProcessRSSBytes <= 0) {
		t.Fatalf("heartbeat host %+v; want memory figures from /proc", h)
	}
}
