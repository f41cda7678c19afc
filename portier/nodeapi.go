package portier

import "github.com/gin-gonic/gin"

func (s *Server) registerNodeAPI(g *gin.RouterGroup) {}
