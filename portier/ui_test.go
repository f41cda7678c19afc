package portier

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/auth"
)

// uiEnv is a control plane over httptest with a browser-like client per user.
type uiEnv struct {
	t     *testing.T
	srv   *httptest.Server
	ctl   *Server
	store *models.Store
	users map[string]*models.User
}

func newUIEnv(t *testing.T) *uiEnv {
	t.Helper()
	st := modelstest.SQLite(t)
	srv, err := New(Params{Store: st, Logger: slog.New(slog.DiscardHandler), PublicHost: "media.example", RTMPPort: 1935})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &uiEnv{t: t, srv: hs, ctl: srv, store: st, users: map[string]*models.User{}}
	for _, u := range []struct{ name, role string }{{"admin", models.RoleAdmin}, {"op1", models.RoleOperator}, {"op2", models.RoleOperator}, {"viewer", models.RoleViewer}} {
		usr, err := st.CreateUser(context.Background(), u.name, "password-"+u.name, u.role)
		if err != nil {
			t.Fatal(err)
		}
		e.users[u.name] = usr
	}
	return e
}

// uiClient is one browser: a cookie jar, redirects not followed.
type uiClient struct {
	e    *uiEnv
	c    *http.Client
	csrf string
}

func (e *uiEnv) client() *uiClient {
	jar, _ := cookiejar.New(nil)
	return &uiClient{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login signs in as name through the real form and returns the client.
func (e *uiEnv) login(name string) *uiClient {
	e.t.Helper()
	c := e.client()
	_, doc := c.get("/login", http.StatusOK)
	tok, _ := doc.Find(`form[action="/login"] input[name="_csrf"]`).Attr("value")
	res, _ := c.post("/login", url.Values{"_csrf": {tok}, "username": {name}, "password": {"password-" + name}})
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d", name, res.StatusCode)
	}
	_, doc = c.get("/", http.StatusOK)
	c.csrf, _ = doc.Find(`meta[name="csrf-token"]`).Attr("content")
	if c.csrf == "" {
		e.t.Fatal("signed-in page has no CSRF token")
	}
	return c
}

func (c *uiClient) do(req *http.Request) (*http.Response, *goquery.Document) {
	c.e.t.Helper()
	res, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if strings.Contains(string(body), "goroutine ") || strings.Contains(string(body), "panic") {
		c.e.t.Fatalf("%s %s leaked a stack trace", req.Method, req.URL.Path)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
	if err != nil {
		c.e.t.Fatal(err)
	}
	return res, doc
}

func (c *uiClient) get(path string, want int) (*http.Response, *goquery.Document) {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.e.srv.URL+path, nil)
	res, doc := c.do(req)
	if want != 0 && res.StatusCode != want {
		c.e.t.Fatalf("GET %s: status %d, want %d: %s", path, res.StatusCode, want, doc.Find("main").Text())
	}
	return res, doc
}

func (c *uiClient) post(path string, form url.Values) (*http.Response, *goquery.Document) {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// submit posts form with the session's CSRF token.
func (c *uiClient) submit(path string, form url.Values) (*http.Response, *goquery.Document) {
	c.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", c.csrf)
	return c.post(path, form)
}

func (e *uiEnv) stream(owner, name string) *models.Stream {
	e.t.Helper()
	st, err := e.store.CreateStream(context.Background(), "live", name, e.users[owner].ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func TestUISignInSessionAndCookies(t *testing.T) {
	e := newUIEnv(t)
	c := e.client()
	// Signed out: pages redirect to the sign-in form.
	res, _ := c.get("/streams", http.StatusSeeOther)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
		t.Fatalf("redirect to %q", loc)
	}
	_, doc := c.get("/login", http.StatusOK)
	tok, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	if len(tok) < 32 {
		t.Fatalf("login form CSRF token %q", tok)
	}
	if doc.Find(`label[for="username"]`).Length() != 1 || doc.Find(`label[for="password"]`).Length() != 1 {
		t.Fatal("login inputs are not labelled")
	}
	res, doc = c.post("/login", url.Values{"_csrf": {tok}, "username": {"op1"}, "password": {"wrong-password"}})
	if res.StatusCode != http.StatusUnauthorized || doc.Find("#login-error").Length() != 1 {
		t.Fatalf("wrong password: status %d", res.StatusCode)
	}
	res, _ = c.post("/login", url.Values{"_csrf": {tok}, "username": {"op1"}, "password": {"password-op1"}, "next": {"//evil.example/"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login: status %d location %q (an off-site next must become /)", res.StatusCode, res.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == auth.SessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/", sess)
	}
	_, doc = c.get("/", http.StatusOK)
	if !strings.Contains(doc.Find("header").Text(), "op1") {
		t.Fatal("dashboard does not show the signed-in user")
	}
	if doc.Find(`a[href="/admin/users"]`).Length() != 0 {
		t.Fatal("an operator sees the admin navigation")
	}
	// The session also authenticates the API, which needs the CSRF header for changes.
	csrf, _ := doc.Find(`meta[name="csrf-token"]`).Attr("content")
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/streams", strings.NewReader(`{"name":"viaapi"}`))
	req.Header.Set("Content-Type", "application/json")
	if res, _ := c.do(req); res.StatusCode != http.StatusForbidden {
		t.Fatalf("API POST with a session but no CSRF header: status %d, want 403", res.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/streams", strings.NewReader(`{"name":"viaapi"}`))
	req.Header.Set(auth.CSRFHeader, csrf)
	if res, _ := c.do(req); res.StatusCode != http.StatusCreated {
		t.Fatalf("API POST with a session and CSRF header: status %d, want 201", res.StatusCode)
	}
	// Logout ends the session server-side.
	c.csrf = csrf
	if res, _ := c.submit("/logout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	other := e.client()
	u, _ := url.Parse(e.srv.URL)
	other.c.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: sess.Value}})
	other.get("/", http.StatusSeeOther)
}

func TestUICSRFRefused(t *testing.T) {
	e := newUIEnv(t)
	c := e.login("op1")
	// No token, then a wrong one: 403 page, nothing created.
	for _, form := range []url.Values{{"name": {"nocsrf"}}, {"name": {"nocsrf"}, "_csrf": {"not-the-token"}}} {
		res, doc := c.post("/streams", form)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without a valid CSRF token: status %d, want 403", res.StatusCode)
		}
		if !strings.Contains(doc.Find(".error-status").Text(), "403") {
			t.Fatalf("refusal is not the error page: %q", doc.Find("main").Text())
		}
	}
	if _, err := e.store.StreamByName(context.Background(), "live", "nocsrf"); err == nil {
		t.Fatal("a CSRF-less post created a stream")
	}
	// The login form is protected too (double-submit cookie).
	anon := e.client()
	res, _ := anon.post("/login", url.Values{"username": {"op1"}, "password": {"password-op1"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF token: status %d", res.StatusCode)
	}
	// With the token it works.
	res, _ = c.submit("/streams", url.Values{"name": {"withcsrf"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST with CSRF token: status %d", res.StatusCode)
	}
}

func TestUISecurityHeadersAndNoInlineScript(t *testing.T) {
	e := newUIEnv(t)
	st := e.stream("admin", "cam")
	c := e.login("admin")
	anon := e.client()
	for _, path := range []string{"/login", "/", "/streams", "/streams/" + uiID(st.ID) + "?reveal=1", "/tasks", "/cluster",
		"/admin/users", "/admin/audit", "/tokens", "/account", "/streams/" + uiID(st.ID) + "/configs/new?type=hls"} {
		client := c
		if path == "/login" {
			client = anon
		}
		res, doc := client.get(path, http.StatusOK)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "media-src 'self' blob:"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff" ||
			res.Header.Get("Referrer-Policy") == "" || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, res.Header)
		}
		// The CSP must hold for the page: no inline scripts, styles or handlers,
		// nothing loaded from another origin.
		doc.Find("script").Each(func(_ int, s *goquery.Selection) {
			src, ok := s.Attr("src")
			if !ok || !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
				t.Errorf("%s: script not from /static/: %v", path, src)
			}
		})
		if doc.Find("style, [style]").Length() > 0 {
			t.Errorf("%s: inline style", path)
		}
		doc.Find("*").Each(func(_ int, s *goquery.Selection) {
			for _, a := range s.Nodes[0].Attr {
				if strings.HasPrefix(a.Key, "on") || strings.HasPrefix(a.Key, "hx-on") || strings.HasPrefix(strings.TrimSpace(a.Val), "javascript:") {
					t.Errorf("%s: inline handler %s=%q", path, a.Key, a.Val)
				}
				if (a.Key == "src" || a.Key == "href") && (strings.HasPrefix(a.Val, "http") || strings.HasPrefix(a.Val, "//")) {
					t.Errorf("%s: external resource %s=%q", path, a.Key, a.Val)
				}
			}
		})
		// Every form field has a label.
		doc.Find("input:not([type=hidden]), select, textarea").Each(func(_ int, s *goquery.Selection) {
			id, _ := s.Attr("id")
			if id == "" || doc.Find(`label[for="`+id+`"]`).Length() == 0 {
				t.Errorf("%s: field %v has no label", path, s.AttrOr("name", "?"))
			}
		})
		// Every post form carries the CSRF token.
		doc.Find(`form[method="post"]`).Each(func(_ int, f *goquery.Selection) {
			if f.Find(`input[name="_csrf"]`).Length() != 1 {
				t.Errorf("%s: form %s lacks the CSRF token", path, f.AttrOr("action", "?"))
			}
		})
	}
	res, _ := c.get("/static/app.js", http.StatusOK)
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("static headers %v", res.Header)
	}
	res, doc := c.get("/no-such-page", http.StatusNotFound)
	if res.Header.Get("Content-Security-Policy") == "" || !strings.Contains(doc.Find(".error-status").Text(), "404") {
		t.Fatal("unknown pages do not get the HTML error page with security headers")
	}
	res, _ = c.get("/api/v1/no-such-endpoint", http.StatusNotFound)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown API path answered %s", res.Header.Get("Content-Type"))
	}
	c.get("/static/", http.StatusNotFound)
	c.get("/static/../ui.go", http.StatusNotFound)
}

func uiID(n int64) string { return strconv.FormatInt(n, 10) }

func TestUIOwnership(t *testing.T) {
	e := newUIEnv(t)
	st := e.stream("op1", "mine")
	base := "/streams/" + uiID(st.ID)

	op2 := e.login("op2")
	res, doc := op2.get(base, http.StatusForbidden)
	if !strings.Contains(doc.Find(".error-status").Text(), "403") || strings.Contains(doc.Text(), st.PublishKey) {
		t.Fatalf("another operator's stream: %q", doc.Find("main").Text())
	}
	if res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("403 is not an HTML page: %v", res.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/rotate-key", "/delete", "/enabled", "/kick"} {
		if res, _ := op2.submit(base+p, url.Values{"enabled": {"false"}}); res.StatusCode != http.StatusForbidden {
			t.Fatalf("op2 POST %s: status %d, want 403", p, res.StatusCode)
		}
	}
	_, doc = op2.get("/streams", http.StatusOK)
	if doc.Find(`tr[data-stream="mine"]`).Length() != 0 {
		t.Fatal("op2 sees op1's stream in the list")
	}

	// The owner sees the key only after revealing it.
	op1 := e.login("op1")
	_, doc = op1.get(base, http.StatusOK)
	if strings.Contains(doc.Text(), st.PublishKey) || doc.Find("#reveal-key").Length() != 1 {
		t.Fatal("the key is on the page before it is revealed")
	}
	_, doc = op1.get(base+"?reveal=1", http.StatusOK)
	ingest := doc.Find("#ingest-url").Text()
	if !strings.Contains(ingest, "key="+st.PublishKey) || !strings.HasPrefix(ingest, "rtmp://media.example:1935/live/mine") {
		t.Fatalf("ingest URL %q", ingest)
	}
	if !strings.Contains(doc.Find("#ffmpeg-cmd").Text(), st.PublishKey) || doc.Find("#obs-server").Text() != "rtmp://media.example:1935/live" {
		t.Fatal("ffmpeg command or OBS server missing")
	}
	if evs, _, err := e.store.ListAudit(context.Background(), models.AuditFilter{Action: "stream.reveal_key"}); err != nil || len(evs) != 1 || evs[0].Actor != "op1" {
		t.Fatalf("key reveal audit events %+v, %v", evs, err)
	}
	if flv, _ := doc.Find("video#preview").Attr("data-flv"); flv != "/live/mine.flv" {
		t.Fatalf("preview FLV URL %q", flv)
	}
	// Absolute play URLs, each with a copy button naming it.
	for proto, want := range map[string]string{"RTMP": "rtmp://media.example:1935/live/mine", "HTTP-FLV": "/live/mine.flv"} {
		dd := doc.Find(`dd[data-play="` + proto + `"]`)
		code, _ := dd.Find("button.copy").Attr("data-copy")
		if !strings.HasSuffix(strings.TrimSpace(dd.Find("code").Text()), want) || dd.Find("code#"+code).Length() != 1 {
			t.Errorf("%s play URL %q (copy %q), want …%s", proto, dd.Text(), code, want)
		}
	}

	// Admins see every stream but not another user's key; viewers read only.
	adm := e.login("admin")
	_, doc = adm.get(base+"?reveal=1", http.StatusOK)
	if strings.Contains(doc.Text(), st.PublishKey) {
		t.Fatal("an admin sees another user's key")
	}
	if doc.Find("#rotate-key").Length() != 1 {
		t.Fatal("admin cannot manage the stream")
	}
	v := e.login("viewer")
	_, doc = v.get(base, http.StatusOK)
	if doc.Find("#rotate-key, #delete-stream, #create-stream").Length() != 0 {
		t.Fatal("a viewer is offered changes")
	}
	if res, _ := v.submit(base+"/rotate-key", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer rotate: %d", res.StatusCode)
	}
	if res, _ := v.submit(base+"/kick", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer kick: %d", res.StatusCode)
	}
	// A kick of a stream without a publish is refused with a reason.
	if res, doc := op1.submit(base+"/kick", nil); res.StatusCode != http.StatusConflict ||
		!strings.Contains(doc.Find("main").Text(), "has no publisher to kick") {
		t.Fatalf("kick of an offline stream: %d %q", res.StatusCode, doc.Find("main").Text())
	}
	v.get("/admin/users", http.StatusForbidden)

	// Rotating (after the confirmation page) changes the key at once.
	_, doc = op1.get(base+"/rotate-key", http.StatusOK)
	if doc.Find(`form[action="`+base+`/rotate-key"] button#confirm`).Length() != 1 {
		t.Fatal("no confirmation form")
	}
	res, _ = op1.submit(base+"/rotate-key", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", res.StatusCode)
	}
	after, _ := e.store.StreamByID(context.Background(), st.ID)
	if after.PublishKey == st.PublishKey {
		t.Fatal("the key did not change")
	}
}

func TestUIEscapingAndFieldErrors(t *testing.T) {
	e := newUIEnv(t)
	st := e.stream("op1", "esc")
	c := e.login("op1")
	evil := `http://x"><script>alert(1)</script>`
	res, doc := c.submit("/streams/"+uiID(st.ID)+"/configs", url.Values{"type": {"restream"}, "name": {"yt"}, "target": {evil}, "enabled": {"true"}})
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid target: status %d", res.StatusCode)
	}
	if doc.Find("#cfg-target-error").Length() != 1 {
		t.Fatalf("no error at the target field: %q", doc.Find("main").Text())
	}
	if v, _ := doc.Find("#cfg-target").Attr("value"); v != evil {
		t.Fatalf("the input does not keep the (escaped) value: %q", v)
	}
	if doc.Find("script:not([src])").Length() != 0 {
		t.Fatal("user input became a script element")
	}
	// http:// is not a restream target: the store's validation says why, at the field.
	_, doc = c.submit("/streams/"+uiID(st.ID)+"/configs", url.Values{"type": {"restream"}, "name": {"yt"}, "target": {"http://example.com/x"}})
	if !strings.Contains(doc.Find("#cfg-target-error").Text(), "scheme") {
		t.Fatalf("target error %q", doc.Find("#cfg-target-error").Text())
	}
	// A bad HLS ladder line points at the renditions field.
	_, doc = c.submit("/streams/"+uiID(st.ID)+"/configs", url.Values{"type": {"hls"}, "name": {"ladder"}, "renditions": {"720p 1281x720 2500 128"}})
	if !strings.Contains(doc.Find("#cfg-renditions-error").Text(), "even") {
		t.Fatalf("renditions error %q", doc.Find("#cfg-renditions-error").Text())
	}
	res, _ = c.submit("/streams/"+uiID(st.ID)+"/configs", url.Values{"type": {"restream"}, "name": {"yt"}, "target": {"rtmp://a.rtmp.example/live2"}, "key": {"abc"}, "enabled": {"true"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("valid config: status %d", res.StatusCode)
	}
	_, doc = c.get("/streams/"+uiID(st.ID), http.StatusOK)
	if doc.Find(`tr[data-config="yt"]`).Length() != 1 || strings.Contains(doc.Find(`tr[data-config="yt"]`).Text(), "abc") {
		t.Fatal("config row missing, or it shows the target's key")
	}
	// A failed login echoes the user name escaped.
	anon := e.client()
	_, doc = anon.get("/login", http.StatusOK)
	tok, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	_, doc = anon.post("/login", url.Values{"_csrf": {tok}, "username": {"<img src=x>"}, "password": {"x"}})
	if doc.Find("img").Length() != 0 {
		t.Fatal("the user name became markup")
	}
}

func TestUIGermanAndAdmin(t *testing.T) {
	e := newUIEnv(t)
	c := e.client()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/login", nil)
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
	_, doc := c.do(req)
	if doc.Find("#sign-in").Text() != "Anmelden" || doc.Find("html").AttrOr("lang", "") != "de" {
		t.Fatalf("German sign-in page: button %q", doc.Find("#sign-in").Text())
	}
	a := e.login("admin")
	res, doc := a.submit("/admin/users", url.Values{"username": {"newop"}, "password": {"short"}, "role": {"operator"}})
	if res.StatusCode != http.StatusBadRequest || doc.Find("#user-password-error").Length() != 1 {
		t.Fatalf("short password: status %d", res.StatusCode)
	}
	if res, _ := a.submit("/admin/users", url.Values{"username": {"newop"}, "password": {"long-enough"}, "role": {"operator"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create user: %d", res.StatusCode)
	}
	u, err := e.store.UserByName(context.Background(), "newop")
	if err != nil || u.Role != models.RoleOperator {
		t.Fatalf("created user %+v, %v", u, err)
	}
	if res, _ := a.submit("/admin/users/"+uiID(u.ID)+"/disabled", url.Values{"disabled": {"true"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	if res, _ := a.submit("/admin/users/"+uiID(e.users["admin"].ID)+"/disabled", url.Values{"disabled": {"true"}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("self-disable: %d", res.StatusCode)
	}
	// A token is shown once, then only its prefix.
	res, doc = a.submit("/tokens", url.Values{"name": {"ci"}, "scopes": {"read"}})
	tok := doc.Find("#new-token").Text()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(tok, models.TokenPrefix) {
		t.Fatalf("new token: status %d %q", res.StatusCode, tok)
	}
	if _, _, err := e.store.TokenAuth(context.Background(), tok); err != nil {
		t.Fatalf("the shown token does not work: %v", err)
	}
	_, doc = a.get("/tokens", http.StatusOK)
	if strings.Contains(doc.Text(), tok) {
		t.Fatal("the token is shown again")
	}
	rows, _ := e.store.ListTokens(context.Background(), e.users["admin"].ID)
	if len(rows) != 1 || doc.Find(`tr[data-token="`+rows[0].Prefix+`"] button`).Length() != 1 {
		t.Fatal("token row with a revoke button missing")
	}
	if res, _ := a.submit("/tokens/"+uiID(rows[0].ID)+"/revoke", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if _, _, err := e.store.TokenAuth(context.Background(), tok); err == nil {
		t.Fatal("a revoked token still works")
	}
	// An operator cannot mint admin-scoped tokens.
	res, doc = e.login("op1").submit("/tokens", url.Values{"name": {"x"}, "scopes": {"admin"}})
	if res.StatusCode != http.StatusBadRequest || doc.Find("#token-scopes-error").Length() != 1 {
		t.Fatalf("operator admin token: status %d", res.StatusCode)
	}
	_, doc = a.get("/admin/audit?action=user.create", http.StatusOK)
	if !strings.Contains(doc.Find("tbody").Text(), "user/newop") {
		t.Fatalf("audit filter: %q", doc.Find("tbody").Text())
	}
	// Language setting overrides the browser.
	if res, _ := a.submit("/account/language", url.Values{"language": {"de"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("language: %d", res.StatusCode)
	}
	_, doc = a.get("/streams", http.StatusOK)
	if !strings.Contains(doc.Find("nav").Text(), "Aufgaben") {
		t.Fatalf("account language not applied: %q", doc.Find("nav").Text())
	}
}

func TestUIDashboardClusterAndTasks(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	now := time.Now()
	st := e.stream("op1", "onair")
	for _, n := range []models.Node{
		{Name: "origin-a", Role: models.NodeRoleOrigin, RTMPAddress: "10.0.0.1:1935", Capacity: 10},
		{Name: "worker-a", Role: models.NodeRoleConcierge, Capacity: 8},
		{Name: "edge-old", Role: models.NodeRoleEdge},
	} {
		if _, err := e.store.RegisterNode(ctx, n, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.NodeHeartbeat(ctx, "worker-a", models.NodeLoad{CostUsed: 4 * taskcost.PerCore}, now); err != nil {
		t.Fatal(err)
	}
	// edge-old went silent a minute ago.
	if err := e.store.NodeHeartbeat(ctx, "edge-old", models.NodeLoad{}, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.AddOrigin(ctx, st.ID, "origin-a", now.Add(-90*time.Second), true, nil); err != nil {
		t.Fatal(err)
	}
	e.store.DB.Model(&models.Stream{}).Where("id = ?", st.ID).Updates(map[string]any{
		"codec_info": `{"video_codec":"h264","width":1280,"height":720,"audio_codec":"aac","sample_rate":44100,"channels":2,"viewers":7}`,
		"bitrate":    2_500_000,
	})
	exit := 1
	failed := &models.Task{StreamID: st.ID, Type: models.TypeRestream, DesiredState: models.DesiredRunning, State: models.TaskFailed,
		NodeName: "worker-a", Restarts: 3, LastExitCode: &exit, LastError: "connection refused", LogTail: "line one\nrtmp://x/y: Connection refused",
		Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "rtmp://127.0.0.1:1935/live/onair", "-f", "flv", "rtmp://a.example/live2/SECRETKEY"}}}
	if _, _, err := e.store.CreateCompiledTask(ctx, failed); err != nil {
		t.Fatal(err)
	}

	// A CDN edge at 250 of its 1,000 Mbit/s.
	if _, err := e.store.RegisterNode(ctx, models.Node{Name: "cdn-a", Role: models.NodeRoleCDNEdge, HTTPAddress: "10.0.0.9:8095", Capacity: 1000}, now); err != nil {
		t.Fatal(err)
	}
	// beat renews the live nodes' heartbeats just before a page is read: the
	// alive window is 3 s, which a loaded machine can spend on the set-up.
	beat := func() {
		t.Helper()
		for n, l := range map[string]models.NodeLoad{"worker-a": {CostUsed: 4 * taskcost.PerCore}, "origin-a": {},
			"cdn-a": {BitrateOut: 250e6, ActiveRequests: 12, HitRatio: 0.96, CacheBytes: 300 << 20}} {
			if err := e.store.NodeHeartbeat(ctx, n, l, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}

	op1 := e.login("op1")
	beat()
	_, doc := op1.get("/", http.StatusOK)
	live := doc.Find("#live-now").Parent().Text()
	for _, want := range []string{"live/onair", "H264 1280x720", "AAC 44100 Hz 2ch", "2.5 Mbit/s", "1m 3", "origin-a", "7"} {
		if !strings.Contains(live, want) {
			t.Errorf("dashboard live section lacks %q: %q", want, live)
		}
	}
	att := doc.Find("#attention").Parent().Text()
	if !strings.Contains(att, "failed") || !strings.Contains(att, "connection refused") {
		t.Errorf("tasks needing attention: %q", att)
	}
	silent := doc.Find("#silent").Parent().Text()
	if !strings.Contains(silent, "edge-old") || strings.Contains(silent, "worker-a") {
		t.Errorf("silent nodes: %q", silent)
	}
	// The polled partial renders the same panel alone.
	_, part := op1.get("/dashboard/panel", http.StatusOK)
	if part.Find("#dashboard").Length() != 1 || part.Find("header").Length() != 0 {
		t.Fatal("the dashboard partial is not the bare panel")
	}

	beat()
	_, doc = op1.get("/cluster", http.StatusOK)
	cdn := doc.Find(`tr[data-cdn-edge="cdn-a"]`)
	if v, _ := cdn.Find("meter").Attr("value"); v != "25" || !strings.Contains(cdn.Text(), "250.0 Mbit/s") ||
		strings.TrimSpace(cdn.Find("[data-hit-ratio]").Text()) != "96%" || !strings.Contains(cdn.Text(), "300.0 MiB") {
		t.Errorf("CDN edge row: meter %q, %q", v, cdn.Text())
	}
	if d, _ := doc.Find("[data-desired-edges]").Attr("data-desired-edges"); d != "1" {
		t.Errorf("desired edges = %q, want 1", d)
	}
	if !strings.Contains(doc.Find(`tr[data-node="origin-a"]`).Text(), "live/onair") {
		t.Errorf("origin row does not list its stream: %q", doc.Find(`tr[data-node="origin-a"]`).Text())
	}
	if v, _ := doc.Find(`tr[data-node="worker-a"] meter`).Attr("value"); v != "50" {
		t.Errorf("worker load meter = %q, want 50", v)
	}
	if got := doc.Find(`tr[data-node="worker-a"] [data-cores]`).Text(); got != "4.00 of 8 cores" {
		t.Errorf("worker load = %q, want 4.00 of 8 cores", got)
	}
	if !strings.Contains(doc.Find(`tr[data-node="edge-old"]`).Text(), "silent") {
		t.Errorf("edge-old not shown silent")
	}
	if doc.Find(`#role-origin`).Length() != 1 || doc.Find(`#role-concierge`).Length() != 1 {
		t.Error("nodes are not grouped by role")
	}

	// The task page shows exit code, restarts, the log tail and a redacted command.
	_, doc = op1.get("/tasks/"+uiID(failed.ID), http.StatusOK)
	body := doc.Find("main").Text()
	for _, want := range []string{"connection refused", "worker-a", "Connection refused", "rtmp://a.example/live2/…"} {
		if !strings.Contains(body, want) {
			t.Errorf("task page lacks %q", want)
		}
	}
	if strings.Contains(body, "SECRETKEY") {
		t.Error("the task page shows the restream key")
	}
	_, doc = op1.get("/tasks?state=failed", http.StatusOK)
	if doc.Find(`#all-tasks tr[data-task="`+uiID(failed.ID)+`"] td`).Eq(4).Text() != "3" {
		t.Errorf("restarts column: %q", doc.Find(`#all-tasks tr[data-task]`).Text())
	}
	res, _ := op1.submit("/tasks/"+uiID(failed.ID)+"/restart", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("restart: %d", res.StatusCode)
	}
	after, _ := e.store.TaskByID(ctx, failed.ID)
	if after.State != models.TaskPending || after.Epoch != failed.Epoch+1 {
		t.Fatalf("after restart: state %s epoch %d", after.State, after.Epoch)
	}
	// Another operator cannot see or restart it.
	op2 := e.login("op2")
	op2.get("/tasks/"+uiID(failed.ID), http.StatusForbidden)
	if res, _ := op2.submit("/tasks/"+uiID(failed.ID)+"/restart", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("op2 restart: %d", res.StatusCode)
	}
	_, doc = op2.get("/", http.StatusOK)
	if strings.Contains(doc.Text(), "onair") {
		t.Error("op2's dashboard shows op1's stream")
	}
}

func TestUIConfigEditDeleteAndStreamToggle(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "edit")
	c := e.login("op1")
	base := "/streams/" + uiID(st.ID)
	if res, _ := c.submit(base+"/configs", url.Values{"type": {"hls"}, "name": {"ladder"}, "enabled": {"true"},
		"renditions": {"720p 1280x720 2500 128\n360p 640x360 800 96"}, "hls_segment_seconds": {"2"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create hls: %d", res.StatusCode)
	}
	cfgs, _ := e.store.ListTaskConfigs(ctx, st.ID)
	if len(cfgs) != 1 {
		t.Fatalf("%d configs", len(cfgs))
	}
	cfgURL := base + "/configs/" + uiID(cfgs[0].ID)
	_, doc := c.get(cfgURL, http.StatusOK)
	if got := doc.Find("#cfg-renditions").Text(); got != "720p 1280x720 2500 128\n360p 640x360 800 96" {
		t.Fatalf("edit form renditions %q", got)
	}
	if _, ok := doc.Find("#cfg-enabled").Attr("checked"); !ok {
		t.Fatal("edit form lost enabled")
	}
	// An invalid edit keeps the old config; a valid one bumps the version.
	res, doc := c.submit(cfgURL, url.Values{"name": {"ladder"}, "renditions": {"1080p 1920x1080 6000"}, "hls_segment_seconds": {"99"}})
	if res.StatusCode != http.StatusBadRequest || doc.Find("#cfg-hlsseg-error").Length() != 1 {
		t.Fatalf("bad segment length: status %d, %q", res.StatusCode, doc.Find("main").Text())
	}
	if res, _ := c.submit(cfgURL, url.Values{"name": {"ladder2"}, "renditions": {"1080p 1920x1080 6000 160"}, "hls_segment_seconds": {"4"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("valid edit: %d", res.StatusCode)
	}
	got, _ := e.store.TaskConfigByID(ctx, st.ID, cfgs[0].ID)
	hls, _ := got.HLS()
	if got.Name != "ladder2" || got.Enabled || got.Version != 2 || hls.SegmentSeconds != 4 || hls.Renditions[0].Width != 1920 {
		t.Fatalf("after edit: %+v %+v", got, hls)
	}
	// Delete goes through a confirmation page.
	_, doc = c.get(cfgURL+"/delete", http.StatusOK)
	if doc.Find(`form[action="`+cfgURL+`/delete"] #confirm`).Length() != 1 {
		t.Fatal("no delete confirmation")
	}
	if res, _ := c.submit(cfgURL+"/delete", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if _, err := e.store.TaskConfigByID(ctx, st.ID, cfgs[0].ID); err == nil {
		t.Fatal("config survived delete")
	}
	// Disable and enable the stream.
	if res, _ := c.submit(base+"/enabled", url.Values{"enabled": {"false"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	_, doc = c.get("/streams", http.StatusOK)
	if doc.Find(`tr[data-stream="edit"] .badge.off`).Length() != 1 {
		t.Fatal("disabled stream not shown as disabled")
	}
	if after, _ := e.store.StreamByID(ctx, st.ID); after.Enabled {
		t.Fatal("stream still enabled")
	}
	// Delete the stream.
	if res, _ := c.submit(base+"/delete", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete stream: %d", res.StatusCode)
	}
	c.get(base, http.StatusNotFound)
}

func TestUIPasswordChange(t *testing.T) {
	e := newUIEnv(t)
	c := e.login("op1")
	other := e.login("op1")
	res, doc := c.submit("/account/password", url.Values{"current": {"nope"}, "new": {"new-password-1"}, "confirm": {"different"}})
	if res.StatusCode != http.StatusBadRequest || doc.Find("#current-error").Length() != 1 || doc.Find("#confirm-password-error").Length() != 1 {
		t.Fatalf("bad change: status %d", res.StatusCode)
	}
	res, _ = c.submit("/account/password", url.Values{"current": {"password-op1"}, "new": {"new-password-1"}, "confirm": {"new-password-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change: %d", res.StatusCode)
	}
	c.get("/account", http.StatusOK)
	other.get("/account", http.StatusSeeOther) // the other session was signed out
	if _, err := e.store.Authenticate(context.Background(), "op1", "new-password-1"); err != nil {
		t.Fatalf("new password does not work: %v", err)
	}
}

func TestUISecureCookieBehindTLS(t *testing.T) {
	e := newUIEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/login", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var found bool
	for _, ck := range res.Cookies() {
		if ck.Name == auth.LoginCSRFCookie {
			found = true
			if !ck.Secure || !ck.HttpOnly {
				t.Fatalf("cookie over TLS: %+v", ck)
			}
		}
	}
	if !found {
		t.Fatal("no login CSRF cookie")
	}
}
