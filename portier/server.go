// Package portier is the control plane: REST API, web UI, publish
// authorisation hooks, stream directory, node registry, task compiler and
// scheduler. Every other role calls it over HTTP.
package portier

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
)

// Params configures a control-plane Server.
type Params struct {
	Store *models.Store
	// ClusterToken authenticates nodes (relays, concierges) and media-server hooks.
	ClusterToken string
	// TrustLoopback accepts node and hook calls from 127.0.0.0/8 without the
	// cluster token (set by `portier run`, where everything is one process).
	TrustLoopback bool
	Logger        *slog.Logger
	// Hooks configures the media-server hook endpoints (see hooks.go).
	Hooks HookParams
	// Live configures live state, the node registry and task compilation (see live.go).
	Live LiveParams
}

// Server is the control plane's HTTP server.
type Server struct {
	p      Params
	log    *slog.Logger
	engine *gin.Engine
	lv     *liveState
}

// New builds a Server and registers every route.
func New(p Params) (*Server, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{p: p, log: p.Logger.With("component", "control")}
	s.lv = newLiveState(s)
	s.engine = gin.New()
	s.engine.Use(gin.Recovery())
	s.registerOps(s.engine)
	s.registerAPI(s.engine.Group("/api/v1"))
	s.registerHooks(s.engine)
	s.registerNodeAPI(s.engine.Group("/internal/v1"))
	s.registerUI(s.engine)
	return s, nil
}

// Handler is the http.Handler that serves every route.
func (s *Server) Handler() http.Handler { return s.engine }
