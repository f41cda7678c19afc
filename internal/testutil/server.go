package testutil

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is an HTTP server on a loopback port that a test can kill as kill
// -9 would (listener and every connection, active ones included, closed at
// once, without waiting for handlers) and start again on the same address:
// a control-plane replica in the failover tests. httptest.Server cannot
// stand in: its Close waits for active requests such as long polls.
type Server struct {
	t     testing.TB
	addr  string
	h     atomic.Pointer[http.Handler]
	calls atomic.Int64

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

// StartServer serves h on 127.0.0.1:0 until the test ends.
func StartServer(t testing.TB, h http.Handler) *Server {
	t.Helper()
	s := &Server{t: t, addr: "127.0.0.1:0"}
	s.SetHandler(h)
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// SetHandler swaps the handler (safe while serving).
func (s *Server) SetHandler(h http.Handler) { s.h.Store(&h) }

// URL is the server's base URL (the same across restarts).
func (s *Server) URL() string { return "http://" + s.addr }

// Calls counts the requests served since the start.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Start serves again on the same address after Kill (a no-op while up).
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		(*s.h.Load()).ServeHTTP(w, r)
	})}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Logf("serve %s: %v", s.addr, err)
		}
	}(s.srv, s.done)
}

// Kill closes the listener and every connection at once.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Close()
	<-s.done
	s.srv = nil
}
