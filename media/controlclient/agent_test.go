package controlclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portier/portier/internal/nodewire"
)

// A 409 name_taken answer to a registration is final: Register returns a
// *NameTakenError with the control plane's message and the holder, and the
// agent stops and closes Fatal instead of retrying. End orders in a
// heartbeat answer reach OnEnd.
func TestAgentNameTakenAndEndOrders(t *testing.T) {
	var taken atomic.Bool
	var registers atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/register") && taken.Load():
			registers.Add(1)
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"name_taken","message":"node name \"n\" is taken by a live origin at 10.0.0.1:1935: give this node its own --name","field":"name"},` +
				`"holder":{"name":"n","role":"origin","rtmp_address":"10.0.0.1:1935"}}`))
		case strings.HasSuffix(r.URL.Path, "/register"):
			registers.Add(1)
			w.Write([]byte(`{"name":"n","heartbeat_interval_ms":20}`))
		default:
			w.Write([]byte(`{"heartbeat_interval_ms":20,"end":[{"path":"live/a","stream_id":7,"publish_id":3,"reason":"key_rotated"}]}`))
		}
	}))
	defer hs.Close()
	c, err := NewClient(ClientParams{BaseURL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	ends := make(chan []nodewire.EndOrder, 16)
	a := NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "n", Role: "edge"}, Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{} },
		OnEnd: func(o []nodewire.EndOrder) { ends <- o }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go a.Run(ctx)
	select {
	case o := <-ends:
		if len(o) != 1 || o[0].StreamID != 7 || o[0].PublishID != 3 || o[0].Reason != "key_rotated" {
			t.Fatalf("end orders %+v", o)
		}
	case <-ctx.Done():
		t.Fatal("no end orders reached OnEnd")
	}
	cancel()

	taken.Store(true)
	registers.Store(0)
	_, err = c.Register(context.Background(), nodewire.NodeInfo{Name: "n", Role: "edge"})
	var nt *NameTakenError
	if !errors.As(err, &nt) || nt.Holder.Role != "origin" || !strings.Contains(nt.Error(), "--name") {
		t.Fatalf("Register on 409: %v", err)
	}
	a = NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "n", Role: "edge"}, Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{} }})
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	select {
	case <-a.Fatal():
	case <-ctx.Done():
		t.Fatal("Fatal not closed after a name_taken refusal")
	}
	<-done
	if !errors.As(a.Err(), &nt) || registers.Load() != 2 {
		t.Fatalf("agent: err %v after %d registrations, want NameTakenError after 1 (+1 direct)", a.Err(), registers.Load())
	}
}

// A shutdown that cuts a heartbeat short still tells the control plane the
// node leaves, so another node may take the name at once (CI saw the name
// held for the alive window because the cancelled heartbeat counted as
// "not registered" and the leave was skipped).
func TestAgentLeavesWhenShutdownCutsAHeartbeat(t *testing.T) {
	inHeartbeat := make(chan struct{}, 1)
	left := make(chan struct{}, 1)
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/register"):
			w.Write([]byte(`{"name":"n","heartbeat_interval_ms":10}`))
		case strings.HasSuffix(r.URL.Path, "/leave"):
			left <- struct{}{}
			w.Write([]byte(`{"released":true}`))
		default:
			select {
			case inHeartbeat <- struct{}{}:
			default:
			}
			select { // hang until the agent has given up
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer hs.Close()
	defer close(release)
	c, err := NewClient(ClientParams{BaseURL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAgent(AgentParams{Client: c, Node: nodewire.NodeInfo{Name: "n", Role: "origin"}, Report: func() nodewire.Heartbeat { return nodewire.Heartbeat{} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	select {
	case <-inHeartbeat:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat sent")
	}
	cancel()
	select {
	case <-left:
	case <-time.After(10 * time.Second):
		t.Fatal("no leave after a shutdown during a heartbeat")
	}
	<-done
}
