package portier

import (
	"net/http"
	"net/url"
	"testing"
)

// TestUILoginNextTabRedirect: the reported case through the real form.
func TestUILoginNextTabRedirect(t *testing.T) {
	e := newUIEnv(t)
	c := e.client()
	_, doc := c.get("/login", http.StatusOK)
	tok, _ := doc.Find(`form[action="/login"] input[name="_csrf"]`).Attr("value")
	res, _ := c.post("/login", url.Values{"_csrf": {tok}, "username": {"op1"}, "password": {"password-op1"}, "next": {"/\t/evil.example/"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("status %d location %q, want 303 to /", res.StatusCode, res.Header.Get("Location"))
	}
}
