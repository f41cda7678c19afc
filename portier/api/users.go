package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// Users (admin only), the caller's own tokens, and /me.

type meView struct {
	models.User
	Via    string   `json:"via"`
	Scopes []string `json:"scopes"`
}

func (s *Server) apiMe(c *gin.Context) {
	p := auth.PrincipalOf(c)
	c.JSON(http.StatusOK, meView{User: *p.User, Via: p.Via, Scopes: p.Scopes})
}

func (s *Server) apiListUsers(c *gin.Context) {
	pg, err := paging.Params(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	list, total, err := s.p.Store.ListUsers(c.Request.Context(), pg.Limit, pg.Offset)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(list, total, pg, len(list)))
}

type createUserReq struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
	Language string `json:"language"`
}

func (s *Server) apiCreateUser(c *gin.Context) {
	var req createUserReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	u, err := s.core.CreateUser(c.Request.Context(), auth.Actor(c), models.NewUser{Username: req.Username, Password: req.Password, Role: req.Role, Language: req.Language})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, u)
}

func (s *Server) loadUser(c *gin.Context) (*models.User, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	u, err := s.p.Store.UserByID(c.Request.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, httperr.NotFound("user")
	}
	return u, err
}

func (s *Server) apiGetUser(c *gin.Context) {
	u, err := s.loadUser(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

type patchUserReq struct {
	Role     *string `json:"role"`
	Disabled *bool   `json:"disabled"`
	Language *string `json:"language"`
	Password *string `json:"password"`
}

// apiPatchUser changes a user through core.ChangeUser: a new password or
// disabling ends the user's sessions, as in the UI.
func (s *Server) apiPatchUser(c *gin.Context) {
	u, err := s.loadUser(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req patchUserReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.core.ChangeUser(c.Request.Context(), auth.Actor(c), u.ID, models.UserChange{UserUpdate: models.UserUpdate{
		Role: req.Role, Disabled: req.Disabled, Language: req.Language, Password: req.Password}})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

type tokenView struct {
	models.APIToken
	Scopes []string `json:"scopes"`
	Token  string   `json:"token,omitempty"` // only in the answer to POST
}

func (s *Server) apiListTokens(c *gin.Context) {
	list, err := s.p.Store.ListTokens(c.Request.Context(), auth.PrincipalOf(c).User.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]tokenView, len(list))
	for i := range list {
		out[i] = tokenView{APIToken: list[i], Scopes: list[i].ScopeList()}
	}
	c.JSON(http.StatusOK, listOf(out, int64(len(out)), paging.Page{Limit: len(out)}, len(out)))
}

type createTokenReq struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// apiCreateToken makes a token for the caller. A token never carries more
// than its creator: scopes beyond the calling token's, or admin for a
// non-admin user, are refused.
func (s *Server) apiCreateToken(c *gin.Context) {
	var req createTokenReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	scopes, err := models.NormalizeScopes(req.Scopes)
	if err != nil {
		s.fail(c, httperr.Invalid("scopes", err.Error()))
		return
	}
	p := auth.PrincipalOf(c)
	for _, sc := range scopes {
		if !p.HasScope(sc) || (sc == models.ScopeAdmin && !p.IsAdmin()) {
			s.fail(c, httperr.New(http.StatusForbidden, httperr.CodeForbidden, "scopes", "you cannot give a token the "+sc+" scope"))
			return
		}
	}
	tok, row, err := s.core.IssueToken(c.Request.Context(), auth.Actor(c), p.User, req.Name, scopes, req.ExpiresAt)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, tokenView{APIToken: *row, Scopes: row.ScopeList(), Token: tok})
}

func (s *Server) apiRevokeToken(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.core.RevokeToken(c.Request.Context(), auth.Actor(c), id)
	if errors.Is(err, models.ErrNotFound) {
		err = httperr.NotFound("token")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// apiDeleteUser removes a user (core.DeleteUser: 409 while they own
// streams, 400 for oneself).
func (s *Server) apiDeleteUser(c *gin.Context) {
	u, err := s.loadUser(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.core.DeleteUser(c.Request.Context(), auth.Actor(c), u.ID); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
