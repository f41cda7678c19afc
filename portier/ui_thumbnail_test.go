package portier

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
)

// rtmpSource runs ffmpeg as a one-shot RTMP server that sends a 640x360
// H.264 test picture to the first client that plays it, then exits: a
// second grab would find nobody listening.
func rtmpSource(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-t", "30",
		"-f", "flv", "-listen", "1", "rtmp://"+addr+"/live/onair")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Connecting to probe would use up the one client: watch for the
	// listening socket instead.
	deadline := time.Now().Add(10 * time.Second)
	for !listening(addr) {
		if time.Now().After(deadline) {
			t.Fatalf("ffmpeg does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr
}

// listening reports whether a TCP socket listens on addr's port
// (/proc/net/tcp: local address in hex, state 0A is LISTEN).
func listening(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", p)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return true
		}
	}
	return false
}

func TestUIThumbnailCoalescedAndCached(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required")
	}
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "onair")
	op1 := e.login("op1")
	raw := func(c *uiClient, path string) (int, string, []byte) {
		t.Helper()
		res, err := c.c.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), b
	}
	path := fmt.Sprintf("/streams/%d/thumbnail.jpg", st.ID)
	// Offline: 404, and the detail page says there is no thumbnail.
	if code, _, _ := raw(op1, path); code != http.StatusNotFound {
		t.Fatalf("offline thumbnail: %d, want 404", code)
	}
	_, doc := op1.get(fmt.Sprintf("/streams/%d", st.ID), http.StatusOK)
	if doc.Find("#stream-thumbnail").Length() != 1 || doc.Find("#thumbnail-img").Length() != 0 {
		t.Fatal("offline detail page: want the thumbnail block without an image")
	}

	addr := rtmpSource(t)
	now := time.Now()
	if _, err := e.store.RegisterNode(ctx, models.Node{Name: "origin-a", Role: models.NodeRoleOrigin, RTMPAddress: addr}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.AddOrigin(ctx, st.ID, "origin-a", now, true, nil); err != nil {
		t.Fatal(err)
	}
	// The origin heartbeats while the test runs, as a relay would: the
	// alive window is 3 s, which a loaded machine spends on two logins
	// and an ffmpeg grab (the grab then found no live origin: 404).
	beatCtx, stopBeats := context.WithCancel(ctx)
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-beatCtx.Done():
				return
			case <-tick.C:
				_ = e.store.NodeHeartbeat(beatCtx, "origin-a", models.NodeLoad{}, time.Now())
			}
		}
	}()
	t.Cleanup(func() { stopBeats(); <-beats })
	// Another operator may not look.
	op2 := e.login("op2")
	if code, _, _ := raw(op2, path); code != http.StatusForbidden {
		t.Fatalf("other operator: %d, want 403", code)
	}
	// Eight requests at once: one ffmpeg, the same JPEG for all.
	var wg sync.WaitGroup
	imgs := make([][]byte, 8)
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := op1.c.Get(e.srv.URL + path)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" {
				t.Errorf("thumbnail: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
			}
			imgs[i], _ = io.ReadAll(res.Body)
		}()
	}
	wg.Wait()
	for i, img := range imgs {
		if len(img) < 100 || img[0] != 0xFF || img[1] != 0xD8 || string(img) != string(imgs[0]) {
			t.Fatalf("image %d: %d bytes, starts % x; want the same JPEG for every request", i, len(img), img[:min(len(img), 2)])
		}
	}
	// Cached: the one-shot source is gone, the next request is still served.
	if code, ct, img := raw(op1, path); code != 200 || ct != "image/jpeg" || string(img) != string(imgs[0]) {
		t.Fatalf("cached thumbnail: %d %s", code, ct)
	}
	if n := e.ctl.ui.ThumbnailGrabs(); n != 1 {
		t.Fatalf("%d ffmpeg grabs, want 1", n)
	}
	// The detail page and the htmx partial point at the image.
	_, doc = op1.get(fmt.Sprintf("/streams/%d", st.ID), http.StatusOK)
	src, _ := doc.Find("#thumbnail-img").Attr("src")
	if !strings.HasPrefix(src, path+"?t=") {
		t.Fatalf("detail page thumbnail src %q", src)
	}
	_, part := op1.get(fmt.Sprintf("/streams/%d/thumbnail", st.ID), http.StatusOK)
	fig := part.Find("figure#stream-thumbnail")
	if trig, _ := fig.Attr("hx-trigger"); trig != "every 10s" || part.Find("header").Length() != 0 {
		t.Fatalf("thumbnail partial: hx-trigger %q", trig)
	}
}
