// Package api serves the REST API under /api/v1: it parses JSON, checks
// who may do what (portier/auth), calls the write paths (portier/core) or
// reads the store, and answers with REST views and the one error body
// (portier/httperr). Its OpenAPI document is served at /api/v1/openapi.json.
package api

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/streamurl"
)

// Live is what the REST API asks of live state (live.State).
type Live interface {
	Now() time.Time
	NodeState(n *models.Node, now time.Time) string
}

// Params configures the REST API.
type Params struct {
	Store *models.Store
	Core  *core.Core
	Auth  *auth.Authenticator
	URLs  *streamurl.Builder
	Live  Live
	// HLSPlayURL is a stream's viewer URL of its master playlist ("" when
	// it has none); nil: never any.
	HLSPlayURL func(c *gin.Context, st *models.Stream) string
	// RecordDir is where record tasks write (the recordings list reads it).
	RecordDir string
	Logger    *slog.Logger
}

// Server serves the REST API.
type Server struct {
	p          Params
	core       *core.Core
	auth       *auth.Authenticator
	urls       *streamurl.Builder
	lv         Live
	hlsPlayURL func(c *gin.Context, st *models.Stream) string
	log        *slog.Logger
}

// New builds the REST API; Register adds its routes.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	hls := p.HLSPlayURL
	if hls == nil {
		hls = func(*gin.Context, *models.Stream) string { return "" }
	}
	return &Server{p: p, core: p.Core, auth: p.Auth, urls: p.URLs, lv: p.Live, hlsPlayURL: hls, log: p.Logger}
}

// fail answers err with the one error body and aborts.
func (s *Server) fail(c *gin.Context, err error) { httperr.Fail(c, s.log, err) }
