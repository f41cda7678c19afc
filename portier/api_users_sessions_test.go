package portier

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// uiEnvOn is newUIEnv on a given store with Params p (Store and Logger filled).
func uiEnvOn(t *testing.T, st *models.Store, p Params) *uiEnv {
	t.Helper()
	p.Store, p.Logger = st, slog.New(slog.DiscardHandler)
	srv, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &uiEnv{t: t, srv: hs, ctl: srv, store: st, users: map[string]*models.User{}}
	for _, u := range []struct{ name, role string }{{"admin", models.RoleAdmin}, {"op1", models.RoleOperator}, {"op2", models.RoleOperator}} {
		usr, err := st.CreateUser(context.Background(), u.name, "password-"+u.name, u.role)
		if err != nil {
			t.Fatal(err)
		}
		e.users[u.name] = usr
	}
	return e
}

// sessionWorks reports whether c's session cookie still authenticates an API call.
func (c *uiClient) sessionWorks() bool {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.e.srv.URL+"/api/v1/me", nil)
	res, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// apiAs sends an API request with an admin token and returns the status.
func (e *uiEnv) apiAs(tok, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/api/v1"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// TestAPIPatchUserEndsSessions: a password change or disabling through the
// API ends the user's UI sessions, as the UI does; both are audited; a
// role change alone keeps them.
func TestAPIPatchUserEndsSessions(t *testing.T) {
	t.Parallel()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			e := uiEnvOn(t, n.Store, Params{})
			ctx := context.Background()
			tok, _, err := e.store.CreateToken(ctx, e.users["admin"].ID, "t", []string{"read", "write", "admin"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			op1, op2 := e.login("op1"), e.login("op2")
			if !op1.sessionWorks() || !op2.sessionWorks() {
				t.Fatal("fresh sessions refused")
			}
			path := "/users/" + uiID(e.users["op1"].ID)
			if code, body := e.apiAs(tok, "PATCH", path, `{"role":"viewer"}`); code != 200 || !op1.sessionWorks() {
				t.Fatalf("role change: %d %v; session works: %v", code, body, op1.sessionWorks())
			}
			if code, body := e.apiAs(tok, "PATCH", path, `{"password":"short"}`); code != 400 || !strings.Contains(jsonNum(body), "password must have 8 to 72 characters") {
				t.Fatalf("short password: %d %v", code, body)
			}
			if !op1.sessionWorks() {
				t.Fatal("a refused change ended the session")
			}
			if code, body := e.apiAs(tok, "PATCH", path, `{"password":"a-new-password"}`); code != 200 {
				t.Fatalf("password change: %d %v", code, body)
			}
			if op1.sessionWorks() {
				t.Fatal("op1's session survived an API password change")
			}
			if _, err := e.store.Authenticate(ctx, "op1", "a-new-password"); err != nil {
				t.Fatalf("new password: %v", err)
			}
			path2 := "/users/" + uiID(e.users["op2"].ID)
			if code, body := e.apiAs(tok, "PATCH", path2, `{"disabled":true}`); code != 200 {
				t.Fatalf("disable: %d %v", code, body)
			}
			// Re-enabling must not bring the old session back.
			if code, body := e.apiAs(tok, "PATCH", path2, `{"disabled":false}`); code != 200 {
				t.Fatalf("enable: %d %v", code, body)
			}
			if op2.sessionWorks() {
				t.Fatal("op2's session survived being disabled through the API")
			}
			evs, _, err := e.store.ListAudit(ctx, models.AuditFilter{Object: "user/op1"})
			if err != nil {
				t.Fatal(err)
			}
			var sawPW bool
			for _, ev := range evs {
				if ev.Action == "user.password" && ev.Actor == "admin" && strings.Contains(string(ev.Details), `"sessions_ended":true`) {
					sawPW = true
				}
			}
			if !sawPW {
				t.Fatalf("no audited password change: %+v", evs)
			}
			// An admin cannot disable themself.
			if code, _ := e.apiAs(tok, "PATCH", "/users/"+uiID(e.users["admin"].ID), `{"disabled":true}`); code != 400 {
				t.Fatalf("self-disable: %d", code)
			}
		})
	}
}
