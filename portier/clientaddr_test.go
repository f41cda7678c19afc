package portier

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/auth"
)

// TestClientAddrTrustedProxies: X-Forwarded-For from an untrusted peer is
// ignored in audit events and sessions; from a trusted proxy it names the
// client (and a client cannot prepend its own entry past the proxy).
func TestClientAddrTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, trusted, xff, want string
	}{
		{"untrusted peer", "", "203.0.113.9", "192.0.2.1"},
		{"untrusted peer, other proxy trusted", "10.0.0.0/8", "203.0.113.9", "192.0.2.1"},
		{"trusted proxy", "192.0.2.0/24", "203.0.113.9", "203.0.113.9"},
		{"trusted proxy, forged left entry", "192.0.2.0/24", "198.51.100.7, 203.0.113.9", "203.0.113.9"},
		{"chain of trusted proxies", "192.0.2.0/24,10.0.0.0/8", "203.0.113.9, 10.1.1.1", "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := modelstest.SQLite(t)
			tp, err := ParseTrustedProxies(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Params{Store: st, Logger: slog.New(slog.DiscardHandler), Security: SecurityParams{TrustedProxies: tp}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := st.CreateUser(ctx, "op1", "password-op1", models.RoleOperator); err != nil {
				t.Fatal(err)
			}
			send := func(req *http.Request) *httptest.ResponseRecorder {
				req.RemoteAddr = "192.0.2.1:40000"
				req.Header.Set("X-Forwarded-For", tc.xff)
				w := httptest.NewRecorder()
				srv.Handler().ServeHTTP(w, req)
				return w
			}
			w := send(httptest.NewRequest("GET", "/login", nil))
			var csrf string
			for _, ck := range w.Result().Cookies() {
				if ck.Name == auth.LoginCSRFCookie {
					csrf = ck.Value
				}
			}
			form := url.Values{"_csrf": {csrf}, "username": {"op1"}, "password": {"password-op1"}}
			req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: auth.LoginCSRFCookie, Value: csrf})
			if w := send(req); w.Code != http.StatusSeeOther {
				t.Fatalf("login: %d", w.Code)
			}
			evs, _, err := st.ListAudit(ctx, models.AuditFilter{Action: "ui.login"})
			if err != nil || len(evs) != 1 || evs[0].Addr != tc.want {
				t.Fatalf("audit addr: %+v %v, want %s", evs, err, tc.want)
			}
			var addr string
			if err := st.DB.Raw("SELECT addr FROM sessions").Scan(&addr).Error; err != nil || addr != tc.want {
				t.Fatalf("session addr %q %v, want %s", addr, err, tc.want)
			}
		})
	}
}
