package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/tests/peers"
)

// The all-in-one in the fan-out table: one `portier run` process (control
// plane on SQLite, relay, HLS origin, CDN edge, concierge and its
// supervisord) measured as a whole, beside the relay alone ("portier
// relay"), so that the table shows what the other roles cost while the
// relay delivers.
func init() {
	RegisterFanoutServer(FanoutServer{Name: "portier-run", Start: func(tb testing.TB) FanoutTarget {
		dir := tb.TempDir()
		httpAddr, rtmpAddr := peers.FreeAddr(tb), peers.FreeAddr(tb)
		p := startPortier(tb, "run", []string{"PORTIER_ADMIN_PASSWORD=" + randomToken(tb)},
			"run", "--data-dir", dir, "--http-addr", httpAddr, "--rtmp-addr", rtmpAddr,
			"--rtsp-addr", "", "--rtsp-udp-addr", "", "--name", "bench", "--log-level", "warn")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := waitHTTPOK(ctx, "http://"+httpAddr+"/readyz", p); err != nil {
			tb.Fatalf("portier run: %v\n%s", err, p.logTail(4000))
		}
		out, err := exec.CommandContext(ctx, benchBinary(tb), "token", "add", "--username", "admin", "--data-dir", dir).Output()
		if err != nil {
			tb.Fatalf("portier token add: %v", err)
		}
		cp := &controlPlane{URL: "http://" + httpAddr, APIToken: strings.TrimSpace(string(out))}
		key := cp.createStream(tb, "live", "bench")
		return FanoutTarget{
			Server:     "portier run",
			PublishURL: "rtmp://" + rtmpAddr + "/live/bench?key=" + key,
			PlayURL:    "rtmp://" + rtmpAddr + "/live/bench",
			PID:        p.PID(),
		}
	}})
}
