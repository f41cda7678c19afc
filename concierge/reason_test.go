package concierge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/web/i18n"
)

func TestFailureReason(t *testing.T) {
	cases := []struct {
		log, spawn string
		exit       int
		want       string
	}{
		{log: "[tcp @ 0x55] Connection to tcp://127.0.0.1:1935 failed: Connection refused\nrtmp://127.0.0.1/live/x: Connection refused\n", exit: 1, want: "target refused connection"},
		{log: "[https @ 0x1] HTTP error 401 Unauthorized\nServer returned 401 Unauthorized (authorization failed)\n", exit: 1, want: "authentication failed at target"},
		{log: "[rtmp @ 0x1] Server error: Authentication failed\n", exit: 1, want: "authentication failed at target"},
		{log: "/data/in.mp4: No such file or directory\n", exit: 1, want: "file or directory not found"},
		{log: "[tcp @ 0x1] Connection to tcp://10.0.0.1:1935 failed: Connection timed out\n", exit: 1, want: "connection timed out"},
		{log: "[tcp @ 0x1] Failed to resolve hostname nowhere.invalid: Name or service not known\n", exit: 1, want: "host name does not resolve"},
		{log: "Connection refused\nlater: Invalid data found when processing input\n", exit: 1, want: "invalid input data (the source sent no usable media)"},
		{log: "something odd happened\n\n", exit: 3, want: "exited with code 3: something odd happened"},
		{log: "", exit: 137, want: "exited with code 137"},
		{log: "", exit: 0, want: "exited"},
		{spawn: "can't find command", want: "could not start: can't find command"},
	}
	for _, c := range cases {
		if got := failureReason(c.log, c.exit, c.spawn); got != c.want {
			t.Errorf("failureReason(%q, %d) = %q, want %q", c.log, c.exit, got, c.want)
		}
	}
}

func TestAtSource(t *testing.T) {
	log := "[tcp @ 0x55] Connection to tcp://10.1.1.1:554?timeout=0 failed: Connection refused\nrtsp://10.1.1.1:554/cam: Connection refused\n"
	in := "rtsp://10.1.1.1:554/cam"
	if got := atSource(failureReason(log, 1, ""), log, in); got != "source refused connection" {
		t.Errorf("input refused: %q", got)
	}
	out := "[tcp @ 0x55] Connection to tcp://127.0.0.1:1935 failed: Connection refused\nrtmp://127.0.0.1/live/x: Connection refused\n"
	if got := atSource(failureReason(out, 1, ""), out, in); got != "target refused connection" {
		t.Errorf("output refused: %q", got)
	}
	if got := atSource("target refused connection", log, ""); got != "target refused connection" {
		t.Errorf("no input known: %q", got)
	}
}

// Every reason a concierge reports reads in German on a German page.
func TestReasonsTranslated(t *testing.T) {
	for _, r := range reasonRules {
		for _, reason := range []string{r.reason, atSource(r.reason, "rtsp://cam/x: boom", "rtsp://cam/x")} {
			retry := fmt.Sprintf("%s (retry %d in %s)", reason, 2, time.Second)
			if got := i18n.DE.Reason(retry); got == retry || strings.Contains(got, reason) {
				t.Errorf("no German for %q: %q", retry, got)
			}
		}
	}
	for _, r := range []string{failureReason("", 1, ""), failureReason("", 0, "")} {
		if got := i18n.DE.Reason(r); got == r {
			t.Errorf("no German for %q", r)
		}
	}
}
