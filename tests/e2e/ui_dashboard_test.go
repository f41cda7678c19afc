package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// TestUIDashboardGraphs publishes a stream and reads the dashboard in
// Chromium: the cluster's totals (live streams, ingest, egress, viewers,
// tasks by state) and the stream's bitrate and viewer graphs of the last
// hour, drawn as inline SVG from the control plane's samples.
func TestUIDashboardGraphs(t *testing.T) {
	peers.RequireTool(t, "ffmpeg")
	s := startUIStack(t, func(c *uiStackConfig) { c.params.HistoryInterval = 200 * time.Millisecond })
	ctx := context.Background()
	op, err := s.Store.CreateUser(ctx, "gina", "gina-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(ctx, "live", "graphs", op.ID)
	if err != nil {
		t.Fatal(err)
	}
	pub := peers.Publish(t, ctx, "rtmp://"+s.Relay.RTMPAddr().String()+"/live/graphs?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()
	uiWaitUntil(t, 30*time.Second, "the stream is live", func() (bool, error) {
		got, err := s.Store.StreamByName(ctx, "live", "graphs")
		return err == nil && got.Live, err
	})
	// A player, so the stream has a viewer and the relay sends something.
	play := peers.Play(t, ctx, "rtmp://"+s.Relay.RTMPAddr().String()+"/live/graphs", peers.PlayOpts{})
	defer play.Stop()
	uiWaitUntil(t, 30*time.Second, "the stream is live with a bitrate and a viewer", func() (bool, error) {
		got, err := s.Store.StreamByName(ctx, "live", "graphs")
		return err == nil && got.Live && got.Bitrate > 0 && strings.Contains(string(got.CodecInfo), `"viewers":1`), err
	})
	time.Sleep(time.Second) // a few samples with the viewer

	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "gina", "gina-password")
	b.do(t, "dashboard", 20*time.Second, chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(uiCSS(`tr[data-stream="live/graphs"] td.graph-bitrate figure.spark polyline`)))
	text := func(sel string) string {
		return strings.TrimSpace(uiGet(t, b, "read "+sel, 5*time.Second, chromedp.Text(uiCSS(sel))))
	}
	if n := text(`[data-total="live"] .figure`); n != "1" {
		t.Errorf("live streams %q, want 1", n)
	}
	for _, k := range []string{"ingest", "egress"} {
		if v := text(`[data-total="` + k + `"] figcaption`); !strings.HasSuffix(v, "bit/s") || strings.HasPrefix(v, "0 ") {
			t.Errorf("%s %q, want a rate above 0", k, v)
		}
	}
	if v := text(`[data-total="viewers"] figcaption`); v != "1" {
		t.Errorf("viewers %q, want 1", v)
	}
	points := func(sel string) int {
		a := uiGet(t, b, "points of "+sel, 5*time.Second, chromedp.AttributeValue(uiCSS(sel), "data-points"))
		n, _ := strconv.Atoi(a.Value)
		return n
	}
	for _, sel := range []string{`tr[data-stream="live/graphs"] td.graph-bitrate figure.spark`,
		`tr[data-stream="live/graphs"] td.graph-viewers figure.spark`, `[data-total="ingest"] figure.spark`} {
		if n := points(sel); n < 3 {
			t.Errorf("%s has %d points, want several samples", sel, n)
		}
	}
	if v := text(`tr[data-stream="live/graphs"] td.graph-viewers figcaption`); v != "1" {
		t.Errorf("the stream's viewers %q, want 1", v)
	}
	label := uiGet(t, b, "graph label", 5*time.Second, chromedp.AttributeValue(uiCSS(`tr[data-stream="live/graphs"] td.graph-bitrate svg`), "aria-label"))
	if !strings.HasPrefix(label.Value, "Bitrate: ") || !strings.HasSuffix(label.Value, "bit/s") {
		t.Errorf("bitrate graph's label %q", label.Value)
	}
}
