package portier

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// registerOps serves /healthz (the process answers), /readyz (the database
// answers and its migrations are at the latest version) and /metrics.
func (s *Server) registerOps(r *gin.Engine) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.serveMetrics)
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	if err := s.p.Store.Ping(ctx); err != nil {
		s.log.Warn("not ready: database", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": "database unreachable"})
		return
	}
	cur, latest, err := s.p.Store.MigrationStatus(ctx)
	if err != nil {
		s.log.Warn("not ready: migrations", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": "cannot read migration version"})
		return
	}
	if cur != latest {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": "migrations pending", "version": cur, "latest": latest})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "database": string(s.p.Store.Dialect()), "version": cur})
}
