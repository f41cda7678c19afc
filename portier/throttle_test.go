package portier

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/auth"
)

// loginBrowser posts the sign-in form from a given address.
type loginBrowser struct {
	t    *testing.T
	h    http.Handler
	addr string
	csrf string
}

func newLoginBrowser(t *testing.T, h http.Handler, addr string) *loginBrowser {
	b := &loginBrowser{t: t, h: h, addr: addr}
	w := b.send(httptest.NewRequest("GET", "/login", nil))
	for _, ck := range w.Result().Cookies() {
		if ck.Name == auth.LoginCSRFCookie {
			b.csrf = ck.Value
		}
	}
	if b.csrf == "" {
		t.Fatal("no login CSRF cookie")
	}
	return b
}

func (b *loginBrowser) send(req *http.Request) *httptest.ResponseRecorder {
	req.RemoteAddr = b.addr + ":50000"
	if strings.Contains(b.addr, ":") {
		req.RemoteAddr = "[" + b.addr + "]:50000"
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, req)
	return w
}

func (b *loginBrowser) login(user, pw string) *httptest.ResponseRecorder {
	b.t.Helper()
	form := url.Values{"_csrf": {b.csrf}, "username": {user}, "password": {pw}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: auth.LoginCSRFCookie, Value: b.csrf})
	return b.send(req)
}

func newThrottleEnv(t *testing.T, st *models.Store) (*Server, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	srv, err := New(Params{Store: st, Logger: slog.New(slog.DiscardHandler), Security: SecurityParams{Now: clk.now}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "op1", "password-op1", models.RoleOperator); err != nil {
		t.Fatal(err)
	}
	return srv, clk
}

// TestLoginThrottling: the reported attack (50 wrong passwords, then the
// right one) no longer works: after 5 failures each attempt waits a
// doubling delay (429, Retry-After, a clear message), the start is audited,
// the delay is capped, waiting it out is enough, and a success resets it.
func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			srv, clk := newThrottleEnv(t, n.Store)
			b := newLoginBrowser(t, srv.Handler(), "203.0.113.5")
			for i := range 5 {
				if w := b.login("op1", "wrong"); w.Code != http.StatusUnauthorized {
					t.Fatalf("failure %d: %d", i+1, w.Code)
				}
			}
			// The 6th attempt, even with the right password, must wait 1 s.
			w := b.login("op1", "password-op1")
			if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" ||
				!strings.Contains(w.Body.String(), "Too many failed sign-ins. Try again in 1 seconds.") {
				t.Fatalf("throttled attempt: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
			}
			evs, _, err := n.Store.ListAudit(context.Background(), models.AuditFilter{Action: "ui.login.throttled"})
			if err != nil || len(evs) != 1 || evs[0].Object != "user/op1" || evs[0].Addr != "203.0.113.5" {
				t.Fatalf("throttling audit: %+v %v", evs, err)
			}
			// Delays double: 1, 2, 4, 8 ... s after each failure.
			for i, want := range []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300} {
				clk.add(time.Duration(want) * time.Second)
				if w := b.login("op1", "wrong"); w.Code != http.StatusUnauthorized {
					t.Fatalf("attempt after waiting %d s: %d", want, w.Code)
				}
				next := []int{2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}[i]
				if w := b.login("op1", "password-op1"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != fmt.Sprint(next) {
					t.Fatalf("after %d failures: %d Retry-After %q, want %d", 6+i, w.Code, w.Header().Get("Retry-After"), next)
				}
			}
			// The cap (5 min) is all an attacker can impose.
			clk.add(5 * time.Minute)
			if w := b.login("op1", "password-op1"); w.Code != http.StatusSeeOther {
				t.Fatalf("right password after the cap: %d", w.Code)
			}
			// A success resets the failures. The address is now known for
			// op1, so only its own limit (10) applies to it; another
			// address meets the account's limit (5) again.
			for i := range 10 {
				if w := b.login("op1", "wrong"); w.Code != http.StatusUnauthorized {
					t.Fatalf("failure %d after reset: %d", i+1, w.Code)
				}
			}
			if w := b.login("op1", "password-op1"); w.Code != http.StatusTooManyRequests {
				t.Fatalf("11th attempt from the known address: %d", w.Code)
			}
			if w := newLoginBrowser(t, srv.Handler(), "192.0.2.77").login("op1", "password-op1"); w.Code != http.StatusTooManyRequests {
				t.Fatalf("another address after 10 account failures: %d", w.Code)
			}
		})
	}
}

// TestLoginThrottlingDistributed: guesses from many addresses are limited
// by the account's delay; the real user from an address they signed in
// from before is not; and one address guessing at many accounts is limited
// by the address's delay.
func TestLoginThrottlingDistributed(t *testing.T) {
	t.Parallel()
	srv, clk := newThrottleEnv(t, modelstest.SQLite(t))
	if _, err := srv.p.Store.CreateUser(context.Background(), "op2", "password-op2", models.RoleOperator); err != nil {
		t.Fatal(err)
	}
	home := newLoginBrowser(t, srv.Handler(), "198.51.100.20")
	if w := home.login("op1", "password-op1"); w.Code != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", w.Code)
	}
	for i := range 5 {
		b := newLoginBrowser(t, srv.Handler(), fmt.Sprintf("203.0.113.%d", i+1))
		if w := b.login("op1", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	if w := newLoginBrowser(t, srv.Handler(), "203.0.113.99").login("op1", "wrong"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("6th guess from a fresh address: %d, want 429", w.Code)
	}
	if w := newLoginBrowser(t, srv.Handler(), "2001:db8::1").login("op1", "password-op1"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("right password from an unknown address: %d, want 429", w.Code)
	}
	if w := home.login("op1", "password-op1"); w.Code != http.StatusSeeOther {
		t.Fatalf("the real user from a known address: %d, want 303", w.Code)
	}

	// One address, many accounts: 10 free failures, then a delay.
	clk.add(time.Hour)
	b := newLoginBrowser(t, srv.Handler(), "2001:db8:1:2::7")
	for i := range 10 {
		if w := b.login(fmt.Sprintf("nobody%d", i), "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d", i, w.Code)
		}
	}
	// Another address of the same /64 shares the limit.
	if w := newLoginBrowser(t, srv.Handler(), "2001:db8:1:2::8").login("op2", "password-op2"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("same /64 after 10 failures: %d, want 429", w.Code)
	}
	if w := newLoginBrowser(t, srv.Handler(), "2001:db8:1:3::8").login("op2", "password-op2"); w.Code != http.StatusSeeOther {
		t.Fatalf("another /64: %d, want 303", w.Code)
	}
}

// TestAccountPasswordThrottled: the account page's current-password check
// is a password check too: after 5 wrong ones from a new address, the next
// attempt waits (429) even with the right password.
func TestAccountPasswordThrottled(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	e := uiEnvOn(t, modelstest.SQLite(t), Params{Security: SecurityParams{Now: clk.now}})
	c := e.login("op1")
	// Signing in made 127.0.0.1 a known address of op1: forget it, as if
	// the session had been stolen and used elsewhere.
	e.ctl.ui.ForgetKnownAddrs("op1")
	change := func(cur string) int {
		res, _ := c.submit("/account/password", url.Values{"current": {cur}, "new": {"another-password"}, "confirm": {"another-password"}})
		return res.StatusCode
	}
	for i := range 5 {
		if code := change("wrong-password"); code != http.StatusBadRequest {
			t.Fatalf("wrong current password %d: %d", i+1, code)
		}
	}
	if code := change("password-op1"); code != http.StatusTooManyRequests {
		t.Fatalf("6th attempt: %d, want 429", code)
	}
	clk.add(time.Second)
	if code := change("password-op1"); code != http.StatusSeeOther {
		t.Fatalf("after the delay: %d, want 303", code)
	}
}
