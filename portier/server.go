// Package portier is the control plane: REST API, web UI, publish
// authorisation hooks, stream directory, node registry, task compiler and
// scheduler. Every other role calls it over HTTP.
package portier

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/api"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/compile"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/live"
	"github.com/portier/portier/portier/nodeapi"
	"github.com/portier/portier/portier/sched"
	"github.com/portier/portier/portier/streamurl"
)

// Params configures a control-plane Server.
type Params struct {
	Store *models.Store
	// ClusterToken authenticates nodes (relays, concierges) and media-server
	// hooks. No caller is trusted for its address alone, loopback included
	// (behind a reverse proxy on the same host, everyone is loopback): only
	// the networks of Hooks.Allow are.
	ClusterToken string
	Logger       *slog.Logger
	// Hooks configures the media-server hook endpoints (portier/nodeapi).
	Hooks HookParams
	// Live configures live state, the node registry and task compilation (portier/live).
	Live LiveParams

	// PublicHost is the host name encoders and players use in ingest and play
	// URLs. Empty: the host of the API request.
	PublicHost string
	// RTMPPort is the public RTMP port of the relays (default 1935).
	RTMPPort int
	// RTSPPort is the public RTSP port of the relays, for play URLs (0:
	// the relays serve no RTSP and streams show no RTSP URL).
	RTSPPort int
	// PlayHTTPBase is the base URL of HTTP-FLV playback, e.g.
	// "http://example.com:8081". Empty: the address the API was reached at
	// (right for `portier run`, which serves HTTP-FLV there).
	PlayHTTPBase string

	// Security holds the account and input hardening settings (trusted
	// proxies, login throttling, task URL networks); see security.go.
	Security SecurityParams
}

// LiveParams configures live state, the node registry and task compilation.
type LiveParams struct {
	// HeartbeatInterval is what nodes are told to heartbeat at (default 1s).
	// A node that misses 3 intervals is dead: the streams it held are cleared.
	HeartbeatInterval time.Duration
	// Compile is the environment task descriptions are resolved against
	// (relay URL, record directory, HLS origin and its per-task tokens).
	// An empty RelayRTMPURL defaults to rtmp://127.0.0.1:1935.
	Compile compile.Env
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
}

// Server is the control plane's HTTP server.
type Server struct {
	p        Params
	log      *slog.Logger
	engine   *gin.Engine
	lv       *live.State // live state, node registry, task compilation (portier/live)
	liveLog  *slog.Logger
	core     *core.Core // the write paths (portier/core)
	metrics  *Metrics
	urls     *streamurl.Builder  // public ingest and play URLs (portier/streamurl)
	auth     *auth.Authenticator // API tokens and UI sessions (portier/auth)
	sched    *sched.Scheduler    // task placement and leases (portier/sched)
	thumbs   *thumbnailer        // stream thumbnails for the UI (ui_thumbnail.go)
	relay    relayMount          // embedded relay's HTTP handler (relaymount.go)
	hls      hlsMount            // HLS playlist rewriter (hlsmount.go)
	throttle *loginThrottle

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
	s.throttle = newLoginThrottle(p.Security.Now)
	s.urls = streamurl.New(streamurl.Params{PublicHost: p.PublicHost, RTMPPort: p.RTMPPort, RTSPPort: p.RTSPPort, PlayHTTPBase: p.PlayHTTPBase})
	s.auth = auth.New(auth.Params{Store: p.Store, Logger: s.log})
	s.sched = sched.New(sched.Params{Store: p.Store, Heartbeat: p.Live.HeartbeatInterval, ClusterToken: p.ClusterToken, Logger: s.log, Now: p.Live.Now})
	s.liveLog = s.log.With("part", "live")
	env := p.Live.Compile
	env.CheckURL = p.Security.TaskURLs.Check
	s.lv = live.New(live.Params{Store: p.Store, Sched: s.sched, Heartbeat: p.Live.HeartbeatInterval, Compile: env,
		ClusterToken: p.ClusterToken, OriginTTL: p.Hooks.OriginTTL, Now: p.Live.Now, Logger: s.liveLog})
	s.core = core.New(core.Params{Store: p.Store, Live: liveHooks{lv: s.lv, sched: s.sched, log: s.log}, Logger: s.log, Now: s.lv.Now})
	s.thumbs = newThumbnailer("")
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
		Logger: s.log, LiveLogger: s.liveLog}).Register(s.engine) // /hooks and /internal/v1
	s.registerUI(s.engine)
	s.registerRelayMount(s.engine)
	s.registerHLSMount(s.engine)
	return s, nil
}

// Handler is the http.Handler that serves every route.
func (s *Server) Handler() http.Handler { return s.engine }

// Store is the database the Server uses.
func (s *Server) Store() *models.Store { return s.p.Store }
