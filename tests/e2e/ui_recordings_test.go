package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portier/portier/models"
	"github.com/portier/portier/tests/peers"
)

// TestUIRecordings records a stream with a real record task (a concierge
// running ffmpeg) and uses its recordings on the stream page in Chromium:
// the "recording now" badge, the list with sizes and durations, a download
// that ffprobe reads, and a delete (audited); the REST API lists the same.
func TestUIRecordings(t *testing.T) {
	peers.RequireTool(t, "ffprobe")
	recDir := t.TempDir()
	s := startUIStack(t, func(c *uiStackConfig) {
		c.concierge = true
		c.params.Live.Compile.RecordDir = recDir
	})
	ctx := context.Background()
	mo, err := s.Store.CreateUser(ctx, "mo", "mo-password", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Store.CreateStream(ctx, "live", "taped", mo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.CreateTaskConfig(ctx, &models.TaskConfig{StreamID: st.ID, Type: models.TypeRecord, Name: "tape", Enabled: true,
		Spec: []byte(`{"segment_seconds":2,"format":"mp4"}`)}); err != nil {
		t.Fatal(err)
	}
	pub := peers.Publish(t, ctx, "rtmp://"+s.Relay.RTMPAddr().String()+"/live/taped?key="+st.PublishKey, peers.PublishOpts{})
	defer pub.Stop()

	b := newUIBrowser(t)
	uiSignIn(t, b, s.URL, "mo", "mo-password")
	page := fmt.Sprintf("%s/streams/%d", s.URL, st.ID)
	// Segments close every 2 s; the page lists them once written.
	uiWaitUntil(t, 60*time.Second, "two recorded segments and the badge", func() (bool, error) {
		if pub.Exited() {
			t.Fatalf("ffmpeg exited: %s", pub.Stderr())
		}
		b.do(t, "stream page", 20*time.Second, chromedp.Navigate(page), chromedp.WaitVisible(uiCSS("#recordings")))
		n := uiGet(t, b, "rows", 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#recordings tr[data-recording]').length`))
		now := uiGet(t, b, "badge", 5*time.Second, chromedp.Evaluate[bool](`!!document.querySelector('#recording-now')`))
		return n >= 3 && now, nil
	})
	pub.Stop()
	pub.Wait()

	// The second newest segment is complete: download it and probe it.
	name := uiGet(t, b, "a finished segment", 5*time.Second, chromedp.Evaluate[string](
		`document.querySelectorAll('#recordings tr[data-recording]')[1].dataset.recording`))
	href := uiGet(t, b, "its link", 5*time.Second, chromedp.Evaluate[string](
		`document.querySelectorAll('#recordings tr[data-recording]')[1].querySelector('a.recording-download').href`))
	size := uiGet(t, b, "its size", 5*time.Second, chromedp.Evaluate[string](
		`document.querySelectorAll('#recordings tr[data-recording]')[1].querySelectorAll('td')[2].textContent.trim()`))
	if !strings.HasSuffix(size, "KiB") && !strings.HasSuffix(size, "MiB") {
		t.Errorf("segment size %q", size)
	}
	body := uiGet(t, b, "download", 20*time.Second, chromedp.Evaluate[string](
		`fetch('`+href+`').then(async r => r.status + ' ' + r.headers.get('content-disposition') + ' ' + (await r.arrayBuffer()).byteLength)`,
		chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(body, "200 attachment; filename=\""+name+"\"") {
		t.Fatalf("download answered %q", body)
	}
	file := recDir + fmt.Sprintf("/stream.%d/", st.ID) + name
	if res, err := peers.Probe(t, ctx, file); err != nil {
		t.Errorf("ffprobe of the recording: %v", err)
	} else if v, ok := res.Video(); !ok || v.CodecName != "h264" {
		t.Errorf("the recording's streams: %+v", res.Streams)
	}

	// The REST API lists the same files; a name outside the directory is 404.
	tok, _, err := s.Store.CreateToken(ctx, mo.ID, "rec", []string{"read", "write"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		code, out := apiCall(t, s.URL, tok, "GET", path, nil)
		return code, string(out)
	}
	if code, out := get(fmt.Sprintf("/streams/%d/recordings", st.ID)); code != 200 || !strings.Contains(out, name) {
		t.Errorf("API list %d %s", code, out)
	}
	if code, _ := get(fmt.Sprintf("/streams/%d/recordings/..%%2F..%%2Fetc%%2Fpasswd", st.ID)); code != http.StatusNotFound {
		t.Errorf("a path outside the recordings answered %d", code)
	}

	// Delete it from the page.
	b.do(t, "delete", 20*time.Second, chromedp.Navigate(page), chromedp.WaitVisible(uiCSS(`tr[data-recording="`+name+`"] button.recording-delete`)),
		chromedp.Click(uiCSS(`tr[data-recording="`+name+`"] button.recording-delete`)),
		chromedp.WaitNotPresent(uiCSS(`tr[data-recording="`+name+`"]`)))
	if code, _ := get(fmt.Sprintf("/streams/%d/recordings/%s", st.ID, name)); code != http.StatusNotFound {
		t.Errorf("the deleted recording answers %d", code)
	}
	if evs, _, _ := s.Store.ListAudit(ctx, models.AuditFilter{Action: "recording.delete"}); len(evs) != 1 || evs[0].Actor != "mo" {
		t.Errorf("recording.delete audit %+v", evs)
	}
}
