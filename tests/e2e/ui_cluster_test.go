package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
)

// TestUIClusterActions: the cluster page shows each node's host figures
// (CPU, memory, uptime from its heartbeats) and lets an admin drain and
// resume a real concierge and forget a node that no longer reports in,
// while a live node cannot be removed.
func TestUIClusterActions(t *testing.T) {
	s := startUIStack(t, func(c *uiStackConfig) { c.concierge = true })
	ctx := context.Background()
	if _, err := s.Store.CreateUser(ctx, "ida", "ida-password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.RegisterNode(ctx, models.Node{Name: "edge-gone", Role: models.NodeRoleEdge, RTMPAddress: "127.0.0.1:1"}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	uiWaitUntil(t, 20*time.Second, "the concierge reports its host", func() (bool, error) {
		n, err := s.Store.NodeByName(ctx, "worker-e2e")
		return err == nil && n.Load.Host != nil && n.Load.Host.MemoryTotalBytes > 0, nil
	})
	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "ida", "ida-password")
	row := `tr[data-node="worker-e2e"]`
	b.do(t, "cluster page", 20*time.Second, chromedp.Navigate(s.URL+"/cluster"), chromedp.WaitVisible(uiCSS(row+" button.node-drain")))
	host := uiGet(t, b, "host figures", 5*time.Second, chromedp.Text(uiCSS(row+" td.host")))
	for _, want := range []string{"CPU", "%", "Memory", "GiB", "Uptime"} {
		if !strings.Contains(host, want) {
			t.Errorf("host cell %q lacks %q", host, want)
		}
	}

	b.do(t, "drain", 20*time.Second, chromedp.Click(uiCSS(row+" button.node-drain")), chromedp.WaitVisible(uiCSS(row+" button.node-resume")))
	if n, err := s.Store.NodeByName(ctx, "worker-e2e"); err != nil || !n.Draining {
		t.Fatalf("after drain: %+v %v", n, err)
	}
	if evs, _, _ := s.Store.ListAudit(ctx, models.AuditFilter{Action: "node.drain", Object: "node/worker-e2e"}); len(evs) != 1 || evs[0].Actor != "ida" {
		t.Errorf("drain audit %+v", evs)
	}
	b.do(t, "resume", 20*time.Second, chromedp.Click(uiCSS(row+" button.node-resume")), chromedp.WaitVisible(uiCSS(row+" button.node-drain")))
	if n, err := s.Store.NodeByName(ctx, "worker-e2e"); err != nil || n.Draining {
		t.Fatalf("after resume: %+v %v", n, err)
	}

	// Only a silent node offers Remove; removing it takes its row away.
	if n := uiGet(t, b, "remove buttons", 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('button.node-remove').length`)); n != 1 {
		t.Errorf("%d Remove buttons, want 1 (the silent edge)", n)
	}
	b.do(t, "remove", 20*time.Second, chromedp.Click(uiCSS(`tr[data-node="edge-gone"] button.node-remove`)), chromedp.WaitNotPresent(uiCSS(`tr[data-node="edge-gone"]`)))
	if gone := uiGet(t, b, "row gone", 5*time.Second, chromedp.Evaluate[bool](`!document.querySelector('tr[data-node="edge-gone"]')`)); !gone {
		t.Error("the removed node is still listed")
	}
	if _, err := s.Store.NodeByName(ctx, "edge-gone"); err == nil {
		t.Error("the removed node is still stored")
	}
	// A node that reports in cannot be removed (it would register again).
	uiPostForm(t, b, "/admin/nodes/origin-e2e/remove")
	b.do(t, "refused", 20*time.Second, chromedp.WaitVisible(uiCSS(".error-status")))
	if st := uiGet(t, b, "status", 5*time.Second, chromedp.Text(uiCSS(".error-status"))); !strings.Contains(st, "409") {
		t.Errorf("removing a live node: %q, want 409", st)
	}
	if _, err := s.Store.NodeByName(ctx, "origin-e2e"); err != nil {
		t.Errorf("the live origin was removed: %v", err)
	}
}
