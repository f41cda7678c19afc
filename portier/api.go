package portier

import "github.com/gin-gonic/gin"

func (s *Server) registerAPI(g *gin.RouterGroup) {}
