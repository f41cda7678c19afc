// Package ui serves the operator web UI: server-rendered pages (web/views,
// through view models), htmx partials for the live parts, sign-in with
// login throttling, and stream thumbnails. Writes go through the same
// functions as the REST API's (portier/core); who may do what is
// portier/auth's.
package ui

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/core"
	"github.com/portier/portier/portier/history"
	"github.com/portier/portier/portier/hlsrewrite"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/streamurl"
)

// Live is what the UI asks of live state (live.State).
type Live interface {
	NodeState(n *models.Node, now time.Time) string
	AliveSince() time.Time
}

// History is the dashboard's last hour of figures (history.Recorder).
type History interface {
	Totals() []history.Point
	Stream(id int64) []history.Point
}

// Params configures the web UI.
type Params struct {
	Store *models.Store
	Core  *core.Core
	Auth  *auth.Authenticator
	URLs  *streamurl.Builder
	Live  Live
	// ClusterToken signs the UI's internal plays (preview, thumbnails).
	ClusterToken string
	// PlayHTTPBase is the base URL of HTTP-FLV playback (empty: this
	// server); HLSOriginURL the HLS origin's. The content security policy
	// allows fetches there.
	PlayHTTPBase, HLSOriginURL string
	// HLSPlayURL is a stream's viewer URL of its master playlist ("" when
	// it has none); HLSViewers the HLS viewers per stream. nil: none.
	HLSPlayURL func(c *gin.Context, st *models.Stream) string
	HLSViewers func() []hlsrewrite.StreamViewers
	// RecordDir is where record tasks write (the stream page lists and
	// serves its recordings; "": no recordings section).
	RecordDir string
	// History draws the dashboard's graphs; nil: figures without graphs.
	History History
	// Now is the clock of login throttling (tests inject one); nil is
	// time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Server serves the web UI.
type Server struct {
	p          Params
	core       *core.Core
	auth       *auth.Authenticator
	urls       *streamurl.Builder
	lv         Live
	hlsPlayURL func(c *gin.Context, st *models.Stream) string
	hlsViewers func() []hlsrewrite.StreamViewers
	log        *slog.Logger
	throttle   *loginThrottle
	thumbs     *thumbnailer // stream thumbnails (thumbnail.go)
}

// New builds the web UI; Register adds its routes, Close stops its
// thumbnail grabs.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	s := &Server{p: p, core: p.Core, auth: p.Auth, urls: p.URLs, lv: p.Live, hlsPlayURL: p.HLSPlayURL, hlsViewers: p.HLSViewers,
		log: p.Logger, throttle: newLoginThrottle(p.Now), thumbs: newThumbnailer("")}
	if s.hlsPlayURL == nil {
		s.hlsPlayURL = func(*gin.Context, *models.Stream) string { return "" }
	}
	if s.hlsViewers == nil {
		s.hlsViewers = func() []hlsrewrite.StreamViewers { return nil }
	}
	return s
}

// Close stops the thumbnail grabs and waits for them. It is idempotent.
func (s *Server) Close() { s.thumbs.close() }

// ThumbnailGrabs is how many ffmpeg grabs of thumbnails ran (the tests of
// the thumbnail cache count them).
func (s *Server) ThumbnailGrabs() int64 { return s.thumbs.grabs.Load() }

// ForgetKnownAddrs forgets the addresses username signed in from, as if
// its session were used from elsewhere (the tests of the throttled
// password check use it).
func (s *Server) ForgetKnownAddrs(username string) {
	s.throttle.mu.Lock()
	delete(s.throttle.accts, acctKey(username))
	s.throttle.mu.Unlock()
}

// fail answers err with the one error body and aborts.
func (s *Server) fail(c *gin.Context, err error) { httperr.Fail(c, s.log, err) }
