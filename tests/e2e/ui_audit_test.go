package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// TestUIAuditLog reads the audit log in Chromium after a publish, plays
// and a key rotation: play authorisations are hidden unless asked for, every
// object is named kind/id, the time range filters (and a bad time is a
// field error), and the CSV export has the same events.
func TestUIAuditLog(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	s := startUIStack(t)
	ctx := context.Background()
	admin, err := s.Store.CreateUser(ctx, "hanna", "hanna-password", models.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(ctx, "live", "audited", admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	rtmp := "rtmp://" + s.Relay.RTMPAddr().String() + "/live/audited"
	pub := peers.Publish(t, ctx, rtmp+"?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()
	uiWaitUntil(t, 30*time.Second, "the stream is live", func() (bool, error) {
		got, err := s.Store.StreamByName(ctx, "live", "audited")
		return err == nil && got.Live, err
	})
	for i := 0; i < 3; i++ {
		p := peers.Play(t, ctx, rtmp, peers.PlayOpts{})
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := p.WaitFrames(wctx, 5); err != nil {
			t.Fatalf("player %d: %v\n%s", i, err, p.Stderr())
		}
		cancel()
		p.Stop()
	}
	plays, _, err := s.Store.ListAudit(ctx, models.AuditFilter{Action: "play.authorize"})
	if err != nil || len(plays) < 3 {
		t.Fatalf("play authorisations %d, %v", len(plays), err)
	}

	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "hanna", "hanna-password")
	b.do(t, "audit log", 20*time.Second, chromedp.Navigate(s.URL+"/admin/audit"), chromedp.WaitVisible(uiCSS("#hidden-plays")))
	cells := func(col int) []string {
		js := `JSON.stringify([...document.querySelectorAll('main table tbody tr td:nth-of-type(` + strconv.Itoa(col) + `)')].map(td => td.textContent.trim()))`
		var out []string
		raw := uiGet(t, b, "read column", 5*time.Second, chromedp.Evaluate[string](js))
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	actions := cells(3)
	if len(actions) == 0 {
		t.Fatal("no events shown")
	}
	for _, a := range actions {
		if a == "play.authorize" {
			t.Fatalf("play authorisations shown by default: %v", actions)
		}
	}
	hidden := uiGet(t, b, "hidden note", 5*time.Second, chromedp.Text(uiCSS("#hidden-plays")))
	if !strings.Contains(hidden, strconv.Itoa(len(plays))+" ") {
		t.Errorf("hidden note %q, want %d play authorisations", hidden, len(plays))
	}
	objectRE := regexp.MustCompile(`^(–|[a-z-]+/[^:\s]+)$`)
	for _, o := range cells(4) {
		if !objectRE.MatchString(o) {
			t.Errorf("audit object %q is not named kind/id", o)
		}
	}

	b.do(t, "show plays", 20*time.Second, chromedp.Click(uiCSS("#hidden-plays a")), chromedp.WaitVisible(uiCSS("#f-plays:checked")))
	shown := 0
	for _, a := range cells(3) {
		if a == "play.authorize" {
			shown++
		}
	}
	if shown != len(plays) {
		t.Errorf("with plays shown: %d play authorisations on the page, want %d", shown, len(plays))
	}
	for _, o := range cells(4) {
		if !objectRE.MatchString(o) {
			t.Errorf("audit object %q is not named kind/id", o)
		}
	}

	// A range in the future has no events; a bad time is a field error.
	future := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
	b.do(t, "future range", 20*time.Second, chromedp.Navigate(s.URL+"/admin/audit?plays=1&since="+future), chromedp.WaitVisible(uiCSS("#audit-filter")))
	if n := len(cells(3)); n != 0 {
		t.Errorf("%d events since %s", n, future)
	}
	b.do(t, "bad range", 20*time.Second, chromedp.Navigate(s.URL+"/admin/audit?until=yesterday"), chromedp.WaitVisible(uiCSS("#f-until-error")))
	if a := uiGet(t, b, "until invalid", 5*time.Second, chromedp.AttributeValue(uiCSS("#f-until"), "aria-invalid")); a.Value != "true" {
		t.Errorf("until field aria-invalid=%q", a.Value)
	}

	// The CSV export of everything up to a minute from now has every event.
	until := time.Now().UTC().Add(time.Minute).Format("2006-01-02T15:04")
	raw := uiGet(t, b, "fetch CSV", 20*time.Second, chromedp.Evaluate[string](
		`fetch('/admin/audit.csv?plays=1&until=`+until+`').then(async r => r.status + ' ' + r.headers.get('content-type') + '\n' + await r.text())`,
		chromedp.EvalAwaitPromise))
	head, body, _ := strings.Cut(raw, "\n")
	if !strings.HasPrefix(head, "200 text/csv") {
		t.Fatalf("CSV answer %q", head)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, body)
	}
	all, total, err := s.Store.ListAudit(ctx, models.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != int(total)+1 || strings.Join(recs[0], ",") != "time,actor,action,object,result,reason,node,address,details" {
		t.Fatalf("CSV has %d rows (header %v), the store %d events", len(recs), recs[0], total)
	}
	if recs[1][2] != all[0].Action || recs[1][0] != all[0].Time.UTC().Format(time.RFC3339) {
		t.Errorf("first CSV row %v, newest event %+v", recs[1], all[0])
	}
}
