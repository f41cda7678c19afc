package portier

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StartBackground starts the live-state reaper, the task scheduler
// (with, on Postgres, its notifier and listener) and the webhook
// dispatcher; they run until ctx ends
// or Close is called, and Close waits for them.
// Every heartbeat interval the reaper clears the streams held by registered
// nodes that missed nodewire.AliveHeartbeats heartbeats, expires the origins
// of hook-only nodes per Params.Hooks.OriginTTL, and forgets old
// publish-done tombstones. Each step is idempotent, so several
// control-plane replicas may run it at once.
func (s *Server) StartBackground(ctx context.Context) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgCancel != nil || s.closed {
		return // started already, or closed
	}
	ctx, s.bgCancel = context.WithCancel(ctx)
	s.sched.Start(ctx)   // task placement and leases (portier/sched)
	s.history.Start(ctx) // the dashboard's graphs (portier/history)
	s.hooks.Start()      // outgoing webhooks (portier/webhook)
	s.bg.Go(func() {
		t := time.NewTicker(s.lv.Heartbeat())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.lv.Reap(ctx); err != nil && ctx.Err() == nil {
					s.liveLog.Warn("live-state reaper", "err", err)
				}
			}
		}
	})
}

// Close stops the background work (StartBackground) and the thumbnail
// grabs and waits for their goroutines, so the store can be closed after
// it. The HTTP handler must be shut down first. Close is idempotent.
func (s *Server) Close() {
	s.bgMu.Lock()
	s.closed = true
	cancel := s.bgCancel
	s.bgMu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.bg.Wait()
	s.sched.Wait()
	s.history.Close()
	s.ui.Close()
	_ = s.hooks.Close() // before the store closes: deliveries log to it
}

// HookCollectors returns the hook metrics of this Server for the registry
// that serves /metrics.
func (s *Server) HookCollectors() []prometheus.Collector { return s.lv.Collectors() }
