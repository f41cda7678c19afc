package portier

import "github.com/gin-gonic/gin"

func (s *Server) registerHooks(r *gin.Engine) {}
