// Package nodeapi serves the control plane's machine-facing HTTP: the node
// API under /internal/v1 (relays and other nodes register, heartbeat and
// ask before every publish and play; the stream directory; the concierge
// endpoints) and the hook dialects of other media servers under /hooks
// (SRS, nginx-rtmp, MediaMTX). Every dialect is translated into one
// live.Request and decided by live state (portier/live).
package nodeapi

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
)

// Decider takes the publish and play decisions (live.State).
type Decider interface {
	AuthorizePublish(ctx context.Context, req live.Request) live.Decision
	AuthorizePlay(ctx context.Context, req live.Request) live.Decision
	ConfirmPublish(ctx context.Context, req live.Request, restore bool) live.Decision
	PublishDone(ctx context.Context, req live.Request) error
	PublishDoneByID(ctx context.Context, req live.Request, streamID, publishID int64) error
	FindStream(ctx context.Context, app, name string) (*models.PublishTarget, bool, error)
}

// Registry follows the nodes' heartbeats (live.State).
type Registry interface {
	Now() time.Time
	Heartbeat() time.Duration
	AliveSince() time.Time
	Reconcile(ctx context.Context, node string, reported []nodewire.PublishedStream) ([]nodewire.EndOrder, error)
	StoreStreamStats(ctx context.Context, node string, reports []models.StreamStatReport) error
	StoreAudit(ctx context.Context, ev *models.AuditEvent)
}

// Live is what the node API asks of live state.
type Live interface {
	Decider
	Registry
}

// Scheduler is what the concierge endpoints ask of the scheduler
// (sched.Scheduler).
type Scheduler interface {
	Now() time.Time
	Lease() time.Duration
	Kick()
	StaleReport()
	// DBResult tells the death gate how a heartbeat write went.
	DBResult(err error)
	WaitAssignment(ctx context.Context, node, after string, wait time.Duration) (wire.Assignment, error)
}

// Params configures the node API.
type Params struct {
	Store *models.Store
	Live  Live
	Sched Scheduler
	// ClusterToken authenticates nodes and hooks; see HookParams.Allow for
	// the networks trusted without it.
	ClusterToken string
	Hooks        HookParams
	// Logger is the control plane's logger; LiveLogger the live-state part
	// of it (decisions, registrations, heartbeats).
	Logger, LiveLogger *slog.Logger
	// Webhooks takes task.failed, task.recovered and recording.finished
	// events; nil: none.
	Webhooks Emitter
	// PublicURL is the base URL of the web UI and REST API that webhooks
	// link to (recording.finished's download_url), e.g.
	// "https://portier.example.com".
	PublicURL string
}

// Server serves the node API and the hook dialects.
type Server struct {
	p       Params
	lv      Live
	sched   Scheduler
	log     *slog.Logger
	liveLog *slog.Logger
	// recPruned is when this replica last pruned the claims of finished
	// recordings (unix nanoseconds).
	recPruned atomic.Int64
}

// New builds the node API; Register adds its routes.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.LiveLogger == nil {
		p.LiveLogger = p.Logger
	}
	return &Server{p: p, lv: p.Live, sched: p.Sched, log: p.Logger, liveLog: p.LiveLogger}
}

// Register adds the hook endpoints (/hooks/...) and the node API
// (/internal/v1/...) to r.
func (s *Server) Register(r *gin.Engine) {
	s.registerHooks(r)
	s.registerNodeAPI(r.Group("/internal/v1"))
}
