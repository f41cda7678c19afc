package portier

import "github.com/gin-gonic/gin"

func (s *Server) registerOps(r *gin.Engine) {}
