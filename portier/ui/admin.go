package ui

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
	"github.com/portier/portier/web/i18n"
	"github.com/portier/portier/web/views"
)

func (s *Server) usersVM(c *gin.Context, form views.NewUser) (views.Users, error) {
	list, _, err := s.p.Store.ListUsers(rctx(c), 0, 0)
	if err != nil {
		return views.Users{}, err
	}
	me := auth.PrincipalOf(c).User.ID
	vm := views.Users{Form: form}
	for _, u := range list {
		vm.Rows = append(vm.Rows, views.UserRow{ID: u.ID, Username: u.Username, Role: u.Role, Disabled: u.Disabled,
			Created: formatTime(&u.CreatedAt), IsSelf: u.ID == me})
	}
	return vm, nil
}

func (s *Server) uiUsers(c *gin.Context) {
	vm, err := s.usersVM(c, views.NewUser{Role: models.RoleOperator})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.UsersView(s.page(c, "Users", "users"), vm))
}

func (s *Server) uiCreateUser(c *gin.Context) {
	l := s.lang(c)
	form := views.NewUser{Username: strings.TrimSpace(c.PostForm("username")), Role: c.PostForm("role"), Errors: views.FieldErrors{}}
	password := c.PostForm("password")
	if !models.ValidUsername(form.Username) {
		form.Errors["username"] = l.T("Use %s.", l.T(models.UsernameRule))
	}
	if !models.ValidRole(form.Role) {
		form.Errors["role"] = l.T("Choose admin, operator or viewer.")
	}
	if models.CheckPassword(password) != nil {
		form.Errors["password"] = l.T("Use 8 to 72 characters.")
	}
	if len(form.Errors) == 0 {
		_, err := s.core.CreateUser(rctx(c), auth.Actor(c), models.NewUser{Username: form.Username, Password: password, Role: form.Role})
		switch {
		case errors.Is(err, models.ErrConflict):
			form.Errors["username"] = l.T("A user %s already exists.", form.Username)
		case err != nil:
			s.uiError(c, 0, err)
			return
		default:
			redirect(c, "/admin/users?done=user-created")
			return
		}
	}
	vm, err := s.usersVM(c, form)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusBadRequest, views.UsersView(s.page(c, "Users", "users"), vm))
}

// uiUpdateUser applies a role or disabled change to a user through
// core.ChangeUser (admins cannot demote or disable themselves, as in the
// API; disabling ends the user's sessions at once).
func (s *Server) uiUpdateUser(c *gin.Context, up models.UserUpdate) {
	s.uiUpdateUserThen(c, up, "user-updated")
}

// uiUpdateUserThen is uiUpdateUser with the confirmation done names.
func (s *Server) uiUpdateUserThen(c *gin.Context, up models.UserUpdate, done string) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		s.uiError(c, 0, httperr.NotFound("user"))
		return
	}
	if _, err := s.core.ChangeUser(rctx(c), auth.Actor(c), id, models.UserChange{UserUpdate: up}); err != nil {
		var se *models.SpecError
		if errors.As(err, &se) {
			s.uiError(c, http.StatusBadRequest, errors.New(se.Field+" "+se.Message))
			return
		}
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/admin/users?done="+done)
}

// uiResetPassword sets another user's password (an admin helping someone
// locked out); their sessions end.
func (s *Server) uiResetPassword(c *gin.Context) {
	pw := c.PostForm("password")
	if err := models.CheckPassword(pw); err != nil {
		s.uiError(c, http.StatusBadRequest, errors.New(s.lang(c).T("Use 8 to 72 characters.")))
		return
	}
	s.uiUpdateUserThen(c, models.UserUpdate{Password: &pw}, "password-reset")
}

// uiDeleteUser removes a user (refused while they own streams).
func (s *Server) uiDeleteUser(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		s.uiError(c, 0, httperr.NotFound("user"))
		return
	}
	if err := s.core.DeleteUser(rctx(c), auth.Actor(c), id); err != nil {
		var se *models.SpecError
		if errors.As(err, &se) {
			s.uiError(c, http.StatusBadRequest, errors.New(se.Message))
			return
		}
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/admin/users?done=user-deleted")
}

func (s *Server) uiSetRole(c *gin.Context) {
	role := c.PostForm("role")
	s.uiUpdateUser(c, models.UserUpdate{Role: &role})
}

func (s *Server) uiSetDisabled(c *gin.Context) {
	disabled := c.PostForm("disabled") == "true"
	s.uiUpdateUser(c, models.UserUpdate{Disabled: &disabled})
}

func (s *Server) tokensVM(c *gin.Context, form views.NewToken) (views.Tokens, error) {
	list, err := s.p.Store.ListTokens(rctx(c), auth.PrincipalOf(c).User.ID)
	if err != nil {
		return views.Tokens{}, err
	}
	vm := views.Tokens{Form: form}
	for _, t := range list {
		vm.Rows = append(vm.Rows, views.TokenRow{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Scopes: t.Scopes,
			Created: formatTime(&t.CreatedAt), LastUsed: formatTime(t.LastUsedAt), Expires: formatTime(t.ExpiresAt),
			Revoked: t.RevokedAt != nil})
	}
	return vm, nil
}

func (s *Server) uiTokens(c *gin.Context) {
	vm, err := s.tokensVM(c, views.NewToken{Scopes: []string{models.ScopeRead, models.ScopeWrite}})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.TokensView(s.page(c, "API tokens", "tokens"), vm))
}

// uiCreateToken makes a token and shows it once, in the answer to the post
// (never in a URL, never again).
func (s *Server) uiCreateToken(c *gin.Context) {
	l := s.lang(c)
	p := auth.PrincipalOf(c)
	form := views.NewToken{Name: strings.TrimSpace(c.PostForm("name")), Scopes: c.PostFormArray("scopes"),
		ExpiresDays: c.PostForm("expires_days"), Errors: views.FieldErrors{}}
	var expires *time.Time
	if form.ExpiresDays != "" {
		days, err := strconv.Atoi(form.ExpiresDays)
		if err != nil || days < 1 || days > 3650 {
			form.Errors["expires_days"] = l.T("Choose when the token expires.")
		} else {
			t := time.Now().UTC().AddDate(0, 0, days)
			expires = &t
		}
	}
	scopes, err := models.NormalizeScopes(form.Scopes)
	if err != nil {
		form.Errors["scopes"] = err.Error()
	}
	for _, sc := range scopes {
		if sc == models.ScopeAdmin && !p.IsAdmin() {
			form.Errors["scopes"] = l.T("Only admins can make tokens with the admin scope.")
		}
	}
	if len(form.Name) > 100 {
		form.Errors["name"] = l.T("Use at most 100 characters.")
	}
	var tok string
	if len(form.Errors) == 0 {
		if tok, _, err = s.core.IssueToken(rctx(c), auth.Actor(c), p.User, form.Name, scopes, expires); err != nil {
			s.uiError(c, 0, err)
			return
		}
		form = views.NewToken{Scopes: []string{models.ScopeRead, models.ScopeWrite}}
	}
	vm, err := s.tokensVM(c, form)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	vm.NewToken = tok
	status := http.StatusOK
	if tok == "" {
		status = http.StatusBadRequest
	}
	s.render(c, status, views.TokensView(s.page(c, "API tokens", "tokens"), vm))
}

func (s *Server) uiRevokeToken(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		s.uiError(c, 0, httperr.NotFound("token"))
		return
	}
	err = s.core.RevokeToken(rctx(c), auth.Actor(c), id)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/tokens?done=token-revoked")
}

const auditPageSize = 50

// playAuthorize is the audit action of a play authorisation: one per
// player start, so they outnumber everything else; the page hides them
// unless asked (plays=1, or an action filter naming them).
const playAuthorize = "play.authorize"

// auditTimeLayout is the datetime-local form of the time range, in UTC.
const auditTimeLayout = "2006-01-02T15:04"

// auditFilter reads the audit page's filters (shared by the page and its
// CSV export); bad times are field errors.
func auditFilter(c *gin.Context, l i18n.Lang) (views.Audit, models.AuditFilter) {
	vm := views.Audit{Actor: strings.TrimSpace(c.Query("actor")), Action: strings.TrimSpace(c.Query("action")),
		Object: strings.TrimSpace(c.Query("object")), Since: strings.TrimSpace(c.Query("since")),
		Until: strings.TrimSpace(c.Query("until")), Plays: c.Query("plays") == "1", PrevOffset: -1, NextOffset: -1,
		Errors: views.FieldErrors{}}
	f := models.AuditFilter{Actor: vm.Actor, Action: vm.Action, Object: vm.Object}
	for _, tf := range []struct {
		field, v string
		t        *time.Time
	}{{"since", vm.Since, &f.Since}, {"until", vm.Until, &f.Until}} {
		if tf.v == "" {
			continue
		}
		t, err := time.ParseInLocation(auditTimeLayout, tf.v, time.UTC)
		if err != nil {
			vm.Errors[tf.field] = l.T("Use a date and time like %s.", "2026-12-03T14:00")
			continue
		}
		*tf.t = t
	}
	if !vm.Plays && vm.Action != playAuthorize {
		f.ExceptActions = []string{playAuthorize}
	}
	return vm, f
}

func (s *Server) uiAudit(c *gin.Context) {
	offset := 0
	if v, ok := c.GetQuery("offset"); ok {
		n, err := paging.ParseOffset(v)
		if err != nil {
			s.uiError(c, http.StatusBadRequest, err)
			return
		}
		offset = n
	}
	vm, f := auditFilter(c, s.lang(c))
	vm.Offset = offset
	status := http.StatusOK
	if len(vm.Errors) > 0 {
		status = http.StatusBadRequest
		s.render(c, status, views.AuditView(s.page(c, "Audit log", "audit"), vm))
		return
	}
	f.Limit, f.Offset = auditPageSize, offset
	list, total, err := s.p.Store.ListAudit(rctx(c), f)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	vm.Total = total
	if f.ExceptActions != nil {
		plays := f
		plays.ExceptActions, plays.Action, plays.Limit, plays.Offset = nil, playAuthorize, 1, 0
		if _, n, err := s.p.Store.ListAudit(rctx(c), plays); err == nil {
			vm.HiddenPlays = n
		}
	}
	if offset > 0 {
		vm.PrevOffset = max(0, offset-auditPageSize)
	}
	if int64(offset+len(list)) < total {
		vm.NextOffset = offset + len(list)
	}
	for _, e := range list {
		details := string(e.Details)
		if details == "{}" {
			details = ""
		}
		vm.Rows = append(vm.Rows, views.AuditRow{Time: formatTime(&e.Time), Actor: e.Actor, Action: e.Action, Object: e.Object,
			Result: e.Result, Reason: e.Reason, Node: e.Node, Addr: e.Addr, Details: details})
	}
	s.render(c, status, views.AuditView(s.page(c, "Audit log", "audit"), vm))
}

// auditCSVMax bounds one export; a longer range is exported in parts (the
// time filter).
const auditCSVMax = 100_000

// uiAuditCSV exports the filtered audit events (newest first) as CSV.
func (s *Server) uiAuditCSV(c *gin.Context) {
	vm, f := auditFilter(c, s.lang(c))
	if len(vm.Errors) > 0 {
		s.uiError(c, http.StatusBadRequest, errors.New("the time range is not a date and time like 2026-12-03T14:00"))
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="audit-`+time.Now().UTC().Format("20060102-1504")+`.csv"`)
	w := csv.NewWriter(c.Writer)
	_ = w.Write([]string{"time", "actor", "action", "object", "result", "reason", "node", "address", "details"})
	const page = 1000
	for f.Offset = 0; f.Offset < auditCSVMax; f.Offset += page {
		f.Limit = page
		list, _, err := s.p.Store.ListAudit(rctx(c), f)
		if err != nil {
			// The header is out: end the file where the error is, and log it.
			s.log.Error("audit export", "err", err)
			break
		}
		for _, e := range list {
			_ = w.Write([]string{e.Time.UTC().Format(time.RFC3339), csvCell(e.Actor), csvCell(e.Action), csvCell(e.Object),
				csvCell(e.Result), csvCell(e.Reason), csvCell(e.Node), csvCell(e.Addr), csvCell(string(e.Details))})
		}
		if len(list) < page {
			break
		}
	}
	w.Flush()
}

// csvCell keeps a spreadsheet from running a cell as a formula (a user
// name or a reason an attacker chose, "=HYPERLINK(…)").
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
