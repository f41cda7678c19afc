package nodeapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/portier/live"
)

// directoryLookup answers which alive origins hold app/name now, most recent
// publish first (edges pull from the first and fail over down the list);
// 404 when none does.
func (s *Server) directoryLookup(c *gin.Context) {
	app, name := c.Param("app"), c.Param("name")
	if err := live.CheckAppName(app, name); err != nil {
		c.JSON(http.StatusBadRequest, hookErrBody("invalid", err.Error(), ""))
		return
	}
	nodes, err := s.p.Store.DirectoryOrigins(c.Request.Context(), app, name, s.lv.AliveSince())
	if err != nil {
		s.liveLog.Error("directory", "err", err)
		c.JSON(http.StatusServiceUnavailable, hookErrBody(live.CodeUnavailable, "the control plane cannot read its database; retry", ""))
		return
	}
	out := make([]nodewire.Origin, 0, len(nodes))
	for _, n := range nodes {
		if n.Draining {
			continue
		}
		out = append(out, nodewire.Origin{Name: n.Name, RTMPAddress: n.RTMPAddress, Role: n.Role})
	}
	if len(out) == 0 {
		c.JSON(http.StatusNotFound, hookErrBody("not_live", "no alive origin holds "+app+"/"+name, ""))
		return
	}
	c.JSON(http.StatusOK, nodewire.DirectoryReply{App: app, Name: name, Origins: out})
}
