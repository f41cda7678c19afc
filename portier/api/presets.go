package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/compile"
)

// presetsView is GET /presets: what the task config forms offer, for API
// clients that build their own (compile.RestreamPresets, LadderPresets).
type presetsView struct {
	RestreamTargets []compile.RestreamPreset `json:"restream_targets"`
	HLSLadders      []compile.LadderPreset   `json:"hls_ladders"`
}

func (s *Server) apiPresets(c *gin.Context) {
	c.JSON(http.StatusOK, presetsView{RestreamTargets: compile.RestreamPresets, HLSLadders: compile.LadderPresets})
}
