package portier

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/hlsrewrite"
	"github.com/portier/portier/portier/httperr"
)

// MountHLS serves the HLS playlist rewriter (portier/hlsrewrite) to
// viewers under /hls/APP/NAME/ (/hls/s/ stays the origin's and the
// edges'), and makes GET /api/v1/streams/{id} show play.hls with play
// tokens valid for tokenTTL.
func (s *Server) MountHLS(rw *hlsrewrite.Rewriter, tokenTTL time.Duration) {
	if tokenTTL <= 0 {
		tokenTTL = hlsrewrite.DefaultPlayTokenTTL
	}
	s.hls.Store(&hlsMounted{rw: rw, tokenTTL: tokenTTL})
	s.metrics.Registry.MustRegister(rw.Collectors()...)
}

type hlsMounted struct {
	rw       *hlsrewrite.Rewriter
	tokenTTL time.Duration
}

// hlsMount is what MountHLS set (nil before).
type hlsMount = atomic.Pointer[hlsMounted]

func (s *Server) registerHLSMount(r *gin.Engine) {
	r.Any("/hls/*path", func(c *gin.Context) {
		m := s.hls.Load()
		if m == nil {
			s.fail(c, httperr.NotFound("HLS playlist rewriter"))
			return
		}
		m.rw.ServeHTTP(c.Writer, c.Request)
	})
}

// hlsPlayURL is a stream's viewer URL of its master playlist, with a play
// token unless its HLS is public; empty without a rewriter or an enabled
// HLS task config.
func (s *Server) hlsPlayURL(c *gin.Context, st *models.Stream) string {
	m := s.hls.Load()
	if m == nil {
		return ""
	}
	cfgs, err := s.p.Store.ListTaskConfigs(c.Request.Context(), st.ID)
	if err != nil {
		return ""
	}
	has := false
	for _, tc := range cfgs {
		has = has || (tc.Type == models.TypeHLS && tc.Enabled)
	}
	if !has {
		return ""
	}
	scheme := "http"
	if c.Request.TLS != nil || strings.EqualFold(c.Request.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	u := scheme + "://" + c.Request.Host + hlsrewrite.ViewerPath(st.Application.Name, st.Name)
	if !st.HLSPublic {
		u += "?token=" + m.rw.PlayToken(st.ID, m.tokenTTL)
	}
	return u
}

// hlsViewers is the HLS viewers per stream (none without a rewriter).
func (s *Server) hlsViewers() []hlsrewrite.StreamViewers {
	if m := s.hls.Load(); m != nil {
		return m.rw.Viewers()
	}
	return nil
}

// hlsViewersByPath is hlsViewers keyed "app/name" (the dashboard's history).
func (s *Server) hlsViewersByPath() map[string]int {
	out := map[string]int{}
	for _, v := range s.hlsViewers() {
		out[v.App+"/"+v.Name] += v.Viewers
	}
	return out
}

// HLSDirectory is the rewriter's view of the control plane: live CDN
// edges from the node registry and streams by app and name.
func (s *Server) HLSDirectory() hlsrewrite.Directory { return hlsDirectory{s.p.Store} }

type hlsDirectory struct{ store *models.Store }

func (d hlsDirectory) Edges(ctx context.Context) ([]hlsrewrite.Edge, error) {
	nodes, err := d.store.ListNodes(ctx, models.NodeRoleCDNEdge)
	if err != nil {
		return nil, err
	}
	out := make([]hlsrewrite.Edge, 0, len(nodes))
	for _, n := range nodes {
		if n.LastHeartbeat == nil || n.Draining || n.HTTPAddress == "" {
			continue
		}
		base := n.HTTPAddress
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		out = append(out, hlsrewrite.Edge{Name: n.Name, BaseURL: base, CapacityMbps: n.Capacity,
			ActiveRequests: n.Load.ActiveRequests, LastHeartbeat: *n.LastHeartbeat})
	}
	return out, nil
}

func (d hlsDirectory) StreamByName(ctx context.Context, app, name string) (hlsrewrite.Stream, error) {
	st, err := d.store.StreamByName(ctx, app, name)
	if errors.Is(err, models.ErrNotFound) {
		return hlsrewrite.Stream{}, hlsrewrite.ErrNotFound
	}
	if err != nil {
		return hlsrewrite.Stream{}, err
	}
	return hlsrewrite.Stream{ID: st.ID, Public: st.HLSPublic}, nil
}

var _ http.Handler = (*hlsrewrite.Rewriter)(nil)
