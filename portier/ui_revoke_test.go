package portier

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

// The UI's disable, rotate-key and delete revoke a running publish exactly
// as the REST API's do (they call the same functions): the stream goes
// offline and the revocation is audited with the relay and why.
func TestUIRevokesRunningPublishes(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "cam")
	if _, err := e.store.RegisterNode(ctx, models.Node{Name: "origin-1", Role: models.NodeRoleOrigin, RTMPAddress: "127.0.0.1:1935"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	publish := func() {
		t.Helper()
		cur, _ := e.store.StreamByID(ctx, st.ID)
		if _, _, err := e.store.AddPublish(ctx, models.Publish{StreamID: st.ID, Node: "origin-1", Now: time.Now(), New: true, Key: cur.PublishKey, RequireEnabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	revoked := func(reason string) {
		t.Helper()
		cur, err := e.store.StreamByID(ctx, st.ID)
		if reason != models.RevokeDeleted && (err != nil || cur.Live || cur.RevokedThrough != cur.PublishCount || cur.RevokeReason != reason) {
			t.Fatalf("after the UI's %s: %+v %v", reason, cur, err)
		}
		evs, _, _ := e.store.ListAudit(ctx, models.AuditFilter{Action: "publish.revoke", Limit: 100})
		for _, ev := range evs {
			if ev.Node == "origin-1" && ev.Actor == "op1" && strings.Contains(string(ev.Details), `"reason":"`+reason+`"`) {
				return
			}
		}
		t.Fatalf("no publish.revoke audit event by op1 naming origin-1 for %s: %+v", reason, evs)
	}
	c := e.login("op1")
	base := "/streams/" + uiID(st.ID)

	publish()
	if res, _ := c.submit(base+"/enabled", url.Values{"enabled": {"false"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	revoked(models.RevokeDisabled)
	if res, _ := c.submit(base+"/enabled", url.Values{"enabled": {"true"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", res.StatusCode)
	}
	publish()
	if res, _ := c.submit(base+"/rotate-key", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate key: %d", res.StatusCode)
	}
	revoked(models.RevokeKeyRotated)
	publish()
	if res, _ := c.submit(base+"/delete", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	revoked(models.RevokeDeleted)
}
