package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
)

// TestUIUserAdministration: an admin resets another user's password (their
// sessions end, the new password signs in), deletes a user (refused while
// they own streams), and makes an API token that expires.
func TestUIUserAdministration(t *testing.T) {
	s := startUIStack(t)
	ctx := context.Background()
	if _, err := s.Store.CreateUser(ctx, "jo", "jo-password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	kim, err := s.Store.CreateUser(ctx, "kim", "kim-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := s.Store.CreateUser(ctx, "lee", "lee-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateStream(ctx, "live", "lees", owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Store.CreateSession(ctx, kim.ID, "test", "127.0.0.1", time.Hour); err != nil {
		t.Fatal(err)
	}

	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "jo", "jo-password")
	kimID := strconv.FormatInt(kim.ID, 10)
	b.do(t, "reset kim's password", 20*time.Second,
		chromedp.Navigate(s.URL+"/admin/users"),
		chromedp.Click(uiCSS(`details.reset-password summary`)), // the first other user's row: kim
		chromedp.WaitVisible(uiCSS("#pw-"+kimID)),
		chromedp.SendKeys(uiCSS("#pw-"+kimID), "kim-new-password"),
		chromedp.Submit(uiCSS("#pw-"+kimID)),
		chromedp.WaitVisible(uiCSS(".flash")))
	if _, err := s.Store.Authenticate(ctx, "kim", "kim-new-password"); err != nil {
		t.Errorf("the new password does not sign in: %v", err)
	}
	if n := sessionsOf(t, s.Store, kim.ID); n != 0 {
		t.Errorf("kim has %d sessions after the reset, want 0", n)
	}

	// lee owns a stream: refused, with the reason; kim owns none: deleted.
	uiPostForm(t, b, "/admin/users/"+strconv.FormatInt(owner.ID, 10)+"/delete")
	b.do(t, "refused", 20*time.Second, chromedp.WaitVisible(uiCSS(".error-status")))
	if st := uiGet(t, b, "status", 5*time.Second, chromedp.Text(uiCSS("main"))); !strings.Contains(st, "409") || !strings.Contains(st, "owns 1 streams") {
		t.Errorf("deleting a stream owner: %q", st)
	}
	b.do(t, "users again", 20*time.Second, chromedp.Navigate(s.URL+"/admin/users"), chromedp.WaitVisible(uiCSS("button.user-delete")))
	uiPostForm(t, b, "/admin/users/"+kimID+"/delete")
	b.do(t, "deleted", 20*time.Second, chromedp.WaitVisible(uiCSS(".flash")))
	if _, err := s.Store.UserByID(ctx, kim.ID); err == nil {
		t.Error("kim is still there")
	}
	if evs, _, _ := s.Store.ListAudit(ctx, models.AuditFilter{Action: "user.delete", Object: "user/kim"}); len(evs) != 1 || evs[0].Actor != "jo" {
		t.Errorf("delete audit %+v", evs)
	}

	// A token that expires in 30 days.
	b.do(t, "token with expiry", 20*time.Second,
		chromedp.Navigate(s.URL+"/tokens"),
		chromedp.SendKeys(uiCSS("#token-name"), "month"),
		chromedp.SetValue(uiCSS("#token-expires"), "30"),
		chromedp.Click(uiCSS("#create-token")),
		chromedp.WaitVisible(uiCSS(`tr td.expires`)))
	toks, err := s.Store.ListTokens(ctx, mustUser(t, s.Store, "jo").ID)
	if err != nil || len(toks) != 1 || toks[0].ExpiresAt == nil {
		t.Fatalf("tokens %+v %v", toks, err)
	}
	if d := time.Until(*toks[0].ExpiresAt); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("token expires in %v, want 30 days", d)
	}
	if cell := uiGet(t, b, "expires cell", 5*time.Second, chromedp.Text(uiCSS(`tr td.expires`))); !strings.Contains(cell, toks[0].ExpiresAt.UTC().Format("2006-01-02")) {
		t.Errorf("expires cell %q", cell)
	}
}

func mustUser(t *testing.T, st *models.Store, name string) *models.User {
	t.Helper()
	u, err := st.UserByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func sessionsOf(t *testing.T, st *models.Store, userID int64) int64 {
	t.Helper()
	var n int64
	if err := st.DB.Model(&models.Session{}).Where("user_id = ?", userID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
