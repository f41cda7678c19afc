// Package portier is the control plane's composition root: New builds the
// scheduler (portier/sched), live state (portier/live), the write paths
// (portier/core) and the HTTP surfaces (portier/api, portier/ui,
// portier/nodeapi) from one Params and serves them behind one Handler;
// StartBackground and Close run and stop the background work. Every
// other role calls the control plane over HTTP.
package portier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/api"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/history"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/live"
	"github.com/portier/portier/portier/nodeapi"
	"github.com/portier/portier/portier/sched"
	"github.com/portier/portier/portier/streamurl"
	"github.com/portier/portier/portier/ui"
	"github.com/portier/portier/portier/webhook"
)

// Server is the control plane's HTTP server.
type Server struct {
	p       Params
	log     *slog.Logger
	engine  *gin.Engine
	lv      *live.State // live state, node registry, task compilation (portier/live)
	liveLog *slog.Logger
	core    *core.Core // the write paths (portier/core)
	metrics *Metrics
	urls    *streamurl.Builder  // public ingest and play URLs (portier/streamurl)
	auth    *auth.Authenticator // API tokens and UI sessions (portier/auth)
	sched   *sched.Scheduler    // task placement and leases (portier/sched)
	ui      *ui.Server          // the web UI (portier/ui); Close stops its thumbnail grabs
	history *history.Recorder   // the dashboard's last hour (portier/history)
	hooks   *webhook.Dispatcher // outgoing webhooks (portier/webhook)
	relay   relayMount          // embedded relay's HTTP handler (relaymount.go)
	hls     hlsMount            // HLS playlist rewriter (hlsmount.go)

	// Background work (StartBackground, Close): bgMu guards bgCancel and
	// closed; bg counts the goroutines Close waits for.
	bgMu     sync.Mutex
	bgCancel context.CancelFunc
	closed   bool
	bg       sync.WaitGroup
}

// New builds a Server and registers every route.
func New(p Params) (*Server, error) {
	if p.Store == nil {
		return nil, errors.New("portier: Params.Store is required")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.RTMPPort == 0 {
		p.RTMPPort = 1935
	}
	p.Store.SetTaskURLPolicy(p.Security.TaskURLs)
	gin.SetMode(gin.ReleaseMode)
	s := &Server{p: p, log: p.Logger.With("component", "control")}
	s.urls = streamurl.New(streamurl.Params{PublicHost: p.PublicHost, RTMPPort: p.RTMPPort, RTSPPort: p.RTSPPort, PlayHTTPBase: p.PlayHTTPBase})
	s.auth = auth.New(auth.Params{Store: p.Store, Logger: s.log})
	s.sched = sched.New(sched.Params{Store: p.Store, Heartbeat: p.Live.HeartbeatInterval, ClusterToken: p.ClusterToken, Logger: s.log, Now: p.Live.Now})
	s.liveLog = s.log.With("part", "live")
	s.hooks = webhook.New(webhook.Params{Store: p.Store, Logger: s.log, Now: p.Live.Now})
	env := p.Live.Compile
	env.CheckURL = p.Security.TaskURLs.Check
	s.lv = live.New(live.Params{Store: p.Store, Sched: s.sched, Heartbeat: p.Live.HeartbeatInterval, Compile: env,
		ClusterToken: p.ClusterToken, OriginTTL: p.Hooks.OriginTTL, Now: p.Live.Now, Logger: s.liveLog, Webhooks: s.hooks})
	s.core = core.New(core.Params{Store: p.Store, Live: liveHooks{lv: s.lv, sched: s.sched, log: s.log}, Logger: s.log, Now: s.lv.Now,
		Webhooks: s.hooks})
	s.metrics = newMetrics(s)
	s.metrics.Registry.MustRegister(s.sched.Collectors()...)
	s.engine = gin.New()
	// ContextWithFallback stays false on purpose: then a *gin.Context passed
	// as a context.Context has a nil Done channel, so database/sql starts no
	// watcher goroutine that could outlive the pooled gin.Context (a data
	// race). Handlers that want cancellation pass c.Request.Context().
	s.engine.ContextWithFallback = false
	if err := s.configureProxies(); err != nil {
		return nil, err
	}
	s.engine.Use(gin.Recovery(), s.metrics.middleware)
	s.registerOps(s.engine)
	api.New(api.Params{Store: p.Store, Core: s.core, Auth: s.auth, URLs: s.urls, Live: s.lv, HLSPlayURL: s.hlsPlayURL,
		RecordDir: p.Live.Compile.RecordDir, Logger: s.log}).Register(s.engine.Group("/api/v1"))
	nodeapi.New(nodeapi.Params{Store: p.Store, Live: s.lv, Sched: s.sched, ClusterToken: p.ClusterToken, Hooks: p.Hooks,
		Logger: s.log, LiveLogger: s.liveLog, Webhooks: s.hooks, PublicURL: p.PublicURL}).Register(s.engine) // /hooks and /internal/v1
	s.history = history.New(history.Params{Interval: p.HistoryInterval, Logger: s.log,
		Source: history.StoreSource(p.Store, s.lv.AliveSince, s.hlsViewersByPath)})
	s.ui = ui.New(ui.Params{History: s.history, RecordDir: p.Live.Compile.RecordDir, Store: p.Store, Core: s.core, Auth: s.auth, URLs: s.urls, Live: s.lv, ClusterToken: p.ClusterToken,
		PlayHTTPBase: p.PlayHTTPBase, HLSOriginURL: p.Live.Compile.HLSOriginURL, HLSPlayURL: s.hlsPlayURL, HLSViewers: s.hlsViewers,
		Now: p.Security.Now, Logger: s.log})
	s.ui.Register(s.engine)
	s.registerRelayMount(s.engine)
	s.registerHLSMount(s.engine)
	return s, nil
}

// Handler is the http.Handler that serves every route.
func (s *Server) Handler() http.Handler { return s.engine }

// Store is the database the Server uses.
func (s *Server) Store() *models.Store { return s.p.Store }

// Core is the control plane's write paths (for tests and embedding tools).
func (s *Server) Core() *core.Core { return s.core }

// TaskConfigDemand is what the enabled task configs would ask of
// concierges with all their streams live (live.State.ConfigDemand):
// `portier run` compares it with its embedded concierge's capacity.
func (s *Server) TaskConfigDemand(ctx context.Context) (live.Demand, error) {
	return s.lv.ConfigDemand(ctx)
}

// SetSessionAuthenticator replaces how the API authenticates UI session
// cookies (Bearer tokens are always tried first); tests use it.
func (s *Server) SetSessionAuthenticator(f auth.SessionFunc) { s.auth.SetSessionFunc(f) }

// fail answers err with the one error body (httperr.Fail) and aborts.
func (s *Server) fail(c *gin.Context, err error) { httperr.Fail(c, s.log, err) }

// Client addresses. The address a request comes from is recorded in audit
// events and sessions and keys login throttling, so it must not be
// forgeable: X-Forwarded-For and X-Real-IP are believed only when the TCP
// peer is one of Params.Security.TrustedProxies (none by default; gin
// itself would trust every peer). clientAddr is the one function that
// answers "who is this"; nothing else reads those headers.

// configureProxies tells gin which peers' forwarding headers to believe.
func (s *Server) configureProxies() error {
	list := make([]string, len(s.p.Security.TrustedProxies))
	for i, p := range s.p.Security.TrustedProxies {
		list[i] = p.String()
	}
	s.engine.TrustedPlatform = ""
	s.engine.ForwardedByClientIP = len(list) > 0
	s.engine.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	if len(list) == 0 {
		list = nil // trust no peer
	}
	if err := s.engine.SetTrustedProxies(list); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	return nil
}
