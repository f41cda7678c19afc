package portier

import "github.com/gin-gonic/gin"

func (s *Server) registerUI(r *gin.Engine) {}
