package portier

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
)

// Users (admin only), the caller's own tokens, and /me.

type meView struct {
	models.User
	Via    string   `json:"via"`
	Scopes []string `json:"scopes"`
}

func (s *Server) apiMe(c *gin.Context) {
	p := s.principal(c)
	c.JSON(http.StatusOK, meView{User: *p.User, Via: p.Via, Scopes: p.Scopes})
}

func (s *Server) apiListUsers(c *gin.Context) {
	pg, err := pageParams(c)
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

func checkPassword(pw string) error {
	if len(pw) < models.MinPasswordLen || len(pw) > 72 {
		return errInvalid("password", fmt.Sprintf("password must have %d to 72 characters", models.MinPasswordLen))
	}
	return nil
}

func (s *Server) apiCreateUser(c *gin.Context) {
	var req createUserReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	switch {
	case !models.ValidUsername(req.Username):
		s.fail(c, errInvalid("username", "username must be 1-64 characters of A-Z a-z 0-9 _ . @ -"))
		return
	case !models.ValidRole(req.Role):
		s.fail(c, errInvalid("role", "role must be admin, operator or viewer"))
		return
	}
	if err := checkPassword(req.Password); err != nil {
		s.fail(c, err)
		return
	}
	var u *models.User
	err := s.p.Store.Tx(c.Request.Context(), func(tx *models.Store) error {
		var err error
		if u, err = tx.CreateUser(c.Request.Context(), req.Username, req.Password, req.Role); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return apiErr(http.StatusConflict, codeConflict, "username", "a user "+req.Username+" already exists")
			}
			return err
		}
		if req.Language != "" {
			if u, err = tx.UpdateUser(c.Request.Context(), u.ID, models.UserUpdate{Language: &req.Language}); err != nil {
				return err
			}
		}
		return tx.Audit(c.Request.Context(), s.auditEvent(c, "user.create", "user/"+u.Username, gin.H{"role": u.Role}))
	})
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
		return nil, errNotFound("user")
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
	if req.Role != nil && !models.ValidRole(*req.Role) {
		s.fail(c, errInvalid("role", "role must be admin, operator or viewer"))
		return
	}
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			s.fail(c, err)
			return
		}
	}
	if u.ID == s.principal(c).User.ID && ((req.Disabled != nil && *req.Disabled) || (req.Role != nil && *req.Role != models.RoleAdmin)) {
		s.fail(c, errInvalid("role", "you cannot disable yourself or drop your own admin role; ask another admin"))
		return
	}
	var out *models.User
	err = s.p.Store.Tx(c.Request.Context(), func(tx *models.Store) error {
		var err error
		if out, err = tx.UpdateUser(c.Request.Context(), u.ID, models.UserUpdate{Role: req.Role, Disabled: req.Disabled, Language: req.Language, Password: req.Password}); err != nil {
			return err
		}
		details := gin.H{"role": out.Role, "disabled": out.Disabled, "password_changed": req.Password != nil}
		return tx.Audit(c.Request.Context(), s.auditEvent(c, "user.update", "user/"+u.Username, details))
	})
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
	list, err := s.p.Store.ListTokens(c.Request.Context(), s.principal(c).User.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]tokenView, len(list))
	for i := range list {
		out[i] = tokenView{APIToken: list[i], Scopes: list[i].ScopeList()}
	}
	c.JSON(http.StatusOK, listOf(out, int64(len(out)), page{Limit: len(out)}, len(out)))
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
		s.fail(c, errInvalid("scopes", err.Error()))
		return
	}
	p := s.principal(c)
	for _, sc := range scopes {
		if !p.HasScope(sc) || (sc == models.ScopeAdmin && !p.IsAdmin()) {
			s.fail(c, apiErr(http.StatusForbidden, codeForbidden, "scopes", "you cannot give a token the "+sc+" scope"))
			return
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		s.fail(c, errInvalid("expires_at", "expires_at must be in the future"))
		return
	}
	if len(req.Name) > 100 {
		s.fail(c, errInvalid("name", "name must have at most 100 characters"))
		return
	}
	var (
		tok string
		row *models.APIToken
	)
	if req.ExpiresAt != nil {
		t := req.ExpiresAt.UTC()
		req.ExpiresAt = &t
	}
	err = s.p.Store.Tx(c.Request.Context(), func(tx *models.Store) error {
		var err error
		if tok, row, err = tx.CreateToken(c.Request.Context(), p.User.ID, req.Name, scopes, req.ExpiresAt); err != nil {
			return err
		}
		return tx.Audit(c.Request.Context(), s.auditEvent(c, "token.create", "token/"+strconv.FormatInt(row.ID, 10), gin.H{"scopes": scopes, "prefix": row.Prefix}))
	})
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
	p := s.principal(c)
	err = s.p.Store.Tx(c.Request.Context(), func(tx *models.Store) error {
		if _, err := tx.RevokeToken(c.Request.Context(), p.User.ID, id); err != nil {
			if errors.Is(err, models.ErrNotFound) {
				return errNotFound("token")
			}
			return err
		}
		return tx.Audit(c.Request.Context(), s.auditEvent(c, "token.revoke", "token/"+strconv.FormatInt(id, 10), nil))
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
