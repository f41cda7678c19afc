package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/web/i18n"
	"github.com/portier/portier/web/views"
)

// safeNext keeps a post-login redirect on this site. Only a clean
// same-site path is accepted: one leading slash, no second slash or
// backslash right after it (browsers read "//host", "/\\host" and, after
// dropping tabs and newlines, "/\t/host" as another site), no backslash,
// control character or whitespace anywhere, no "//" anywhere, and a parse
// with neither scheme nor host. Anything else becomes "/".
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' || strings.Contains(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	for _, r := range next {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	// A percent-encoded slash or backslash right after the first one is
	// harmless to Go but some proxies decode it before the browser sees it.
	if p := strings.ToLower(next); strings.HasPrefix(p, "/%2f") || strings.HasPrefix(p, "/%5c") {
		return "/"
	}
	return next
}

func (s *Server) uiLoginForm(c *gin.Context) {
	if auth.PrincipalOf(c) != nil {
		redirect(c, safeNext(c.Query("next")))
		return
	}
	p := s.page(c, "Sign in", "")
	p.CSRF = s.auth.LoginCSRF(c)
	s.render(c, http.StatusOK, views.LoginView(p, views.Login{Next: safeNext(c.Query("next"))}))
}

func (s *Server) uiLogin(c *gin.Context) {
	username, password := strings.TrimSpace(c.PostForm("username")), c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	addr := auth.ClientAddr(c)
	if wait := s.throttle.Wait(username, addr); wait > 0 {
		s.refuseThrottled(c, wait, func(p views.Page, msg string) {
			s.render(c, http.StatusTooManyRequests, views.LoginView(p, views.Login{Username: username, Next: next, Error: msg}))
		})
		return
	}
	u, err := s.p.Store.Authenticate(rctx(c), username, password)
	if err != nil {
		if !errors.Is(err, models.ErrNoSecret) {
			s.uiError(c, 0, err)
			return
		}
		s.auditLogin(c, username, models.ResultDenied)
		s.passwordFailed(c, username, addr)
		p := s.page(c, "Sign in", "")
		p.CSRF = s.auth.LoginCSRF(c)
		s.render(c, http.StatusUnauthorized, views.LoginView(p, views.Login{
			Username: username, Next: next, Error: p.T("Wrong username or password, or the account is disabled."),
		}))
		return
	}
	if err := s.auth.StartSession(c, u); err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.throttle.Succeed(username, addr)
	s.auditLogin(c, username, models.ResultOK)
	if n, err := s.p.Store.DeleteExpiredSessions(rctx(c), time.Now()); err != nil {
		s.log.Error("sweep expired sessions", "err", err)
	} else if n > 0 {
		s.log.Debug("swept expired sessions", "count", n)
	}
	redirect(c, next)
}

// refuseThrottled answers a throttled password attempt: 429 with
// Retry-After (whole seconds, rounded up) and the page render draws with a
// message saying how long to wait.
func (s *Server) refuseThrottled(c *gin.Context, wait time.Duration, render func(p views.Page, msg string)) {
	secs := int64((wait + time.Second - 1) / time.Second)
	c.Header("Retry-After", strconv.FormatInt(secs, 10))
	p := s.page(c, "Sign in", "")
	p.CSRF = s.auth.LoginCSRF(c)
	render(p, p.T("Too many failed sign-ins. Try again in %d seconds.", secs))
}

// passwordFailed counts a wrong password against the account and the
// address, and audits the start of throttling.
func (s *Server) passwordFailed(c *gin.Context, username, addr string) {
	th := s.throttle.Fail(username, addr)
	if !th.Account && !th.Addr {
		return
	}
	var on []string
	if th.Account {
		on = append(on, "account")
	}
	if th.Addr {
		on = append(on, "address")
	}
	ev := &models.AuditEvent{Actor: username, Action: "ui.login.throttled", Object: "user/" + acctKey(username), Result: models.ResultDenied,
		Reason: "too many failed sign-ins: further attempts wait", Addr: addr, Details: models.MustJSON(gin.H{"throttled": on})}
	if err := s.p.Store.Audit(rctx(c), ev); err != nil {
		s.log.Error("audit login throttling", "err", err)
	}
	s.log.Warn("login throttling started", "user", acctKey(username), "addr", addr, "on", on)
}

func (s *Server) auditLogin(c *gin.Context, username, result string) {
	ev := &models.AuditEvent{Actor: username, Action: "ui.login", Result: result, Addr: auth.ClientAddr(c)}
	if err := s.p.Store.Audit(rctx(c), ev); err != nil {
		s.log.Error("audit login", "err", err)
	}
}

func (s *Server) uiLogout(c *gin.Context) {
	s.auth.EndSession(c)
	redirect(c, "/login")
}

func (s *Server) accountVM(c *gin.Context) views.Account {
	u := auth.PrincipalOf(c).User
	return views.Account{Username: u.Username, Role: u.Role, Language: u.Language, Errors: views.FieldErrors{}}
}

func (s *Server) uiAccount(c *gin.Context) {
	s.render(c, http.StatusOK, views.AccountView(s.page(c, "Account", "account"), s.accountVM(c)))
}

func (s *Server) uiChangePassword(c *gin.Context) {
	pr := auth.PrincipalOf(c)
	l := s.lang(c)
	vm := s.accountVM(c)
	cur, nw, confirm := c.PostForm("current"), c.PostForm("new"), c.PostForm("confirm")
	addr := auth.ClientAddr(c)
	if wait := s.throttle.Wait(pr.User.Username, addr); wait > 0 {
		s.refuseThrottled(c, wait, func(_ views.Page, msg string) {
			vm.Errors["current"] = msg
			s.render(c, http.StatusTooManyRequests, views.AccountView(s.page(c, "Account", "account"), vm))
		})
		return
	}
	if _, err := s.p.Store.Authenticate(rctx(c), pr.User.Username, cur); err != nil {
		vm.Errors["current"] = l.T("The current password is wrong.")
		s.passwordFailed(c, pr.User.Username, addr)
	} else {
		s.throttle.Succeed(pr.User.Username, addr)
	}
	if nw != confirm {
		vm.Errors["confirm"] = l.T("The two new passwords differ.")
	}
	if len(nw) < models.MinPasswordLen || len(nw) > 72 {
		vm.Errors["new"] = l.T("Use 8 to 72 characters.")
	}
	if len(vm.Errors) > 0 {
		s.render(c, http.StatusBadRequest, views.AccountView(s.page(c, "Account", "account"), vm))
		return
	}
	_, err := s.core.SetPassword(rctx(c), auth.Actor(c), pr.User.ID, nw, auth.CurrentSession(c).ID)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/account?done=password-changed")
}

func (s *Server) uiSetLanguage(c *gin.Context) {
	lang := c.PostForm("language")
	if lang != "" {
		l, ok := i18n.Parse(lang)
		if !ok {
			s.uiError(c, http.StatusBadRequest, errors.New("unknown language"))
			return
		}
		lang = string(l)
	}
	if _, err := s.core.ChangeUser(rctx(c), auth.Actor(c), auth.PrincipalOf(c).User.ID, models.UserChange{UserUpdate: models.UserUpdate{Language: &lang}}); err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/account?done=language-saved")
}
