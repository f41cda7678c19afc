package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
)

// TestRunWarnsWhenConfigsExceedCapacity runs `portier run` (runAll, with
// its embedded concierge and supervisord) on a data dir whose enabled task
// configs need 4.30 cores with all their streams live (three restreams at
// 0.10 and a 720p HLS ladder at 4.00; a disabled config and the configs of
// a disabled stream do not count): with --capacity 2 it logs one WARN line
// naming both figures and what to do; with --capacity 5 it logs none.
func TestRunWarnsWhenConfigsExceedCapacity(t *testing.T) {
	t.Setenv("PORTIER_ADMIN_PASSWORD", "first-admin-password")
	data := t.TempDir()
	ctx := context.Background()
	st, err := models.Open(ctx, filepath.Join(data, "portier.db"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, "op", "op-password-1", models.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	on, err := st.CreateStream(ctx, "live", "studio", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	off, err := st.CreateStream(ctx, "live", "retired", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	disabled := false
	if _, err := st.UpdateStream(ctx, off.ID, models.StreamUpdate{Enabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []models.TaskConfig{
		{StreamID: on.ID, Type: models.TypeRestream, Name: "yt", Enabled: true, Spec: models.RawJSON(`{"target":"rtmp://a.example.com/live","key":"k1"}`)},
		{StreamID: on.ID, Type: models.TypeRestream, Name: "twitch", Enabled: true, Spec: models.RawJSON(`{"target":"rtmp://b.example.com/app","key":"k2"}`)},
		{StreamID: on.ID, Type: models.TypeRecord, Name: "archive", Enabled: true, Spec: models.RawJSON(`{}`)},
		{StreamID: on.ID, Type: models.TypeHLS, Name: "web", Enabled: true, Spec: models.RawJSON(`{"renditions":[{"preset":"720p"}]}`)},
		{StreamID: on.ID, Type: models.TypeHLS, Name: "big", Enabled: false, Spec: models.RawJSON(`{"renditions":[{"preset":"1080p"}]}`)},
		{StreamID: off.ID, Type: models.TypeHLS, Name: "old", Enabled: true, Spec: models.RawJSON(`{"renditions":[{"preset":"1080p"}]}`)},
	} {
		if err := st.CreateTaskConfig(ctx, &c); err != nil {
			t.Fatalf("config %s: %v", c.Name, err)
		}
	}
	st.Close()

	const warning = "the enabled task configs need more CPU than the embedded concierge has"
	for _, tc := range []struct {
		capacity string
		warn     bool
	}{{"2", true}, {"5", false}} {
		t.Run("capacity "+tc.capacity, func(t *testing.T) {
			log := captureStderr(t)
			addr := freeAddr(t)
			startRole(t, runAll, addr, "/readyz", "--data-dir", data, "--http-addr", addr, "--rtmp-addr", freeAddr(t),
				"--rtsp-addr", "", "--no-cdn-edge", "--capacity", tc.capacity, "--log-level", "info",
				// Its own node names: the previous run's nodes are live for an alive
				// window, at other (random) ports.
				"--name", "cap"+tc.capacity)
			var lines []string
			for _, l := range strings.Split(log(), "\n") {
				if strings.Contains(l, warning) {
					lines = append(lines, l)
				}
			}
			if !tc.warn {
				if !strings.Contains(log(), "scheduler started") {
					t.Fatalf("the run's log was not captured: %q", log())
				}
				if len(lines) != 0 {
					t.Fatalf("warned with room to spare: %q", lines)
				}
				return
			}
			want := "need_cores=" + taskcost.Format(3*taskcost.Copy+4*taskcost.PerCore) + " capacity_cores=2 configs=4"
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], want) ||
				!strings.Contains(lines[0], "raise --capacity") || !strings.Contains(lines[0], "portier concierge --control http://127.0.0.1:") {
				t.Fatalf("capacity warning lines %q; want one WARN with %q and what to do", lines, want)
			}
			t.Logf("%s", lines[0])
		})
	}
}

// captureStderr sends os.Stderr (where runAll's logger writes) to a file
// until the test ends, and returns a function that reads what was
// written. The package's tests do not run in parallel.
func captureStderr(t *testing.T) func() string {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = f
	// Registered before startRole's cleanup, so it runs after runAll
	// returned (cleanups run last first).
	t.Cleanup(func() { os.Stderr = old; f.Close() })
	return func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
