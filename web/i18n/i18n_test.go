package i18n

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

func TestNegotiate(t *testing.T) {
	for _, c := range []struct {
		account, accept string
		want            Lang
	}{
		{"", "", EN},
		{"", "de-DE,de;q=0.9,en;q=0.8", DE},
		{"", "fr-FR, en;q=0.5, de;q=0.7", DE},
		{"", "fr, it", EN},
		{"", "de;q=0, en", EN},
		{"en", "de", EN},
		{"de", "en-US", DE},
		{"xx", "de-AT", DE},
		{"", "de;q=abc, en", EN},
	} {
		if got := Negotiate(c.account, c.accept); got != c.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", c.account, c.accept, got, c.want)
		}
	}
}

func TestTranslate(t *testing.T) {
	if got := DE.T("Sign in"); got != "Anmelden" {
		t.Errorf(`DE.T("Sign in") = %q`, got)
	}
	if got := EN.T("Add %s", "x"); got != "Add x" {
		t.Errorf(`EN.T("Add %%s") = %q`, got)
	}
	if got := DE.T("no such message %d", 3); got != "no such message 3" {
		t.Errorf("untranslated message = %q", got)
	}
}

// TestCatalogueComplete finds every literal message the views and the UI
// handlers translate and checks the German catalogue has it, so a new
// English string cannot ship untranslated.
func TestCatalogueComplete(t *testing.T) {
	re := regexp.MustCompile(`\bT\(("(?:[^"\\]|\\.)*")`)
	pageRE := regexp.MustCompile(`s\.page\(c, ("(?:[^"\\]|\\.)+")`)
	var files []string
	for _, g := range []string{"../views/*.templ", "../../portier/ui/*.go"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d source files: %v", len(files), files)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*regexp.Regexp{re, pageRE} {
			for _, m := range r.FindAllSubmatch(b, -1) {
				msg, err := strconv.Unquote(string(m[1]))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				seen++
				if !DE.Has(msg) {
					t.Errorf("%s: no German translation for %q", filepath.Base(f), msg)
				}
			}
		}
	}
	// Values translated at run time (states, roles, types, scopes).
	for _, msg := range []string{"pending", "assigned", "starting", "running", "backoff", "failed", "stopping", "stopped",
		"restream", "record", "pull", "hls", "admin", "operator", "viewer", "read", "write",
		"origin", "edge", "concierge", "cdn-edge", "hls-origin"} {
		seen++
		if !DE.Has(msg) {
			t.Errorf("no German translation for %q", msg)
		}
	}
	if seen < 150 {
		t.Fatalf("found only %d messages: the pattern no longer matches the sources", seen)
	}
}

// The audit reasons of a kick read as German sentences.
func TestReasonKickAudit(t *testing.T) {
	for en, de := range map[string]string{
		"stream publisher kicked: relay e2e-origin ends the publish at its next heartbeat": "Quelle des Streams getrennt: Relay e2e-origin beendet die Veröffentlichung mit seinem nächsten Lebenszeichen",
		"stream publisher kicked: the relay ends the publish":                              "Quelle des Streams getrennt: Das Relay beendet die Veröffentlichung",
		"stream live/x has no publisher to kick: it is not live on any relay":              "Stream live/x hat keine Quelle zum Trennen: Er ist auf keinem Relay live",
	} {
		if got := DE.Reason(en); got != de {
			t.Errorf("Reason(%q) = %q, want %q", en, got, de)
		}
	}
}
