package portier

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestReportsRedactedBeforeStored: the control plane masks what it knows
// of a task (the key in its restream target, its stream's publish key)
// in reports from a concierge that did not, before it stores them, and
// shortens a long log tail only after masking and from a line start, so a
// cut through a key leaves no piece of it.
// maxLogTail is the node API's bound of a stored log tail
// (portier/nodeapi).
const maxLogTail = 4096

func TestReportsRedactedBeforeStored(t *testing.T) {
	ctx := context.Background()
	e := newSchedEnv(t, modelstest.SQLite(t), time.Second)
	e.node(t, "c1", 4)
	st, err := e.st.StreamByID(ctx, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	const key = "RESTREAMKEY-0123456789"
	target := "rtmp://target.example/app/" + key
	tk, _, err := e.st.CreateCompiledTask(ctx, &models.Task{StreamID: e.stream, Type: models.TypeRestream,
		DesiredState: models.DesiredRunning, State: models.TaskPending,
		Description: models.TaskDescription{Command: "ffmpeg", Args: []string{"-i", "rtmp://relay/live/sched", "-f", "flv", target}, Cost: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var epoch int64
	testutil.Eventually(t, 10*time.Second, "the task assigned to c1", func() bool {
		for _, at := range e.assignment(t, "c1", "", 0).Tasks {
			if at.ID == tk.ID {
				epoch = at.Epoch
			}
		}
		return epoch > 0
	})
	// A log whose last maxLogTail bytes start inside the key.
	head := "start\n" + target + ": Connection refused\n"
	cut := len("start\nrtmp://target.example/app/") + len(key)/2
	end := target + ": Connection refused\n" + st.PublishKey + "\n"
	pad := maxLogTail - (len(head) - cut) - len(end)
	filler := strings.Repeat(strings.Repeat("x", 63)+"\n", pad/64) + strings.Repeat("y", pad%64)
	log := head + filler + end
	if !strings.HasPrefix(log[len(log)-maxLogTail:], key[len(key)/2:]) {
		t.Fatalf("test log is not cut inside the key: %q", log[len(log)-maxLogTail:][:40])
	}
	rep := wire.StatusReport{Epoch: epoch, State: "backoff", Error: "exited with code 1: " + target + " (publish key " + st.PublishKey + ")", LogTail: log}
	code, b := e.do(t, "POST", fmt.Sprintf(wire.PathStatusBatch, "c1"), wire.StatusBatch{Reports: []wire.TaskStatusReport{{TaskID: tk.ID, StatusReport: rep}}})
	if code != 200 {
		t.Fatalf("status: %d %s", code, b)
	}
	cur, err := e.st.TaskByID(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"last_error": cur.LastError, "log_tail": cur.LogTail} {
		for _, secret := range []string{key, key[len(key)-8:], st.PublishKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %q: %q", what, secret, text)
			}
		}
	}
	if !strings.Contains(cur.LastError, "rtmp://target.example/app/***") || !strings.Contains(cur.LogTail, "rtmp://target.example/app/***: Connection refused") {
		t.Errorf("masked target missing: error %q, tail ends %q", cur.LastError, cur.LogTail[max(0, len(cur.LogTail)-200):])
	}
	if len(cur.LogTail) > maxLogTail {
		t.Errorf("log tail of %d bytes stored, want at most %d", len(cur.LogTail), maxLogTail)
	}
}
