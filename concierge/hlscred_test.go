package concierge_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge/supervisor/supervisortest"
	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/hlscred"
	"github.com/portier/portier/models"
)

// TestHLSCredentialPerEpoch: the concierge writes the program of an HLS
// task with the credential of the assignment's epoch in place of the
// placeholder; after a failover (the lease expired, epoch+1) the new
// runner has the new epoch's credential, the stored description is
// unchanged, and the credential never reaches the control plane's log
// tails.
func TestHLSCredentialPerEpoch(t *testing.T) {
	s := startStack(t, supervisortest.Python(t))
	ctx := context.Background()
	desc := models.TaskDescription{Command: "sh", Args: []string{"-c", "sleep 300; exit 0", "sh", "Bearer " + wire.CredentialPlaceholder}, Cost: 1, CredentialArg: 3}
	tk, _, err := s.store.CreateCompiledTask(ctx, &models.Task{StreamID: s.stream, Type: models.TypeHLS,
		DesiredState: models.DesiredRunning, State: models.TaskPending, Description: desc})
	if err != nil {
		t.Fatal(err)
	}
	argOf := func(epoch int64) bool {
		want := "Bearer " + hlscred.Sign("tok", hlscred.Cred{StreamID: s.stream, TaskID: tk.ID, Epoch: epoch})
		// The shell (its child sleep has the task's environment too).
		for _, pid := range taskPIDs(tk.ID) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			if len(args) == 5 && args[4] == want {
				return true
			}
		}
		return false
	}
	first := s.waitTask(t, tk.ID, "running with its credential", func(cur *models.Task) bool {
		return cur.State == models.TaskRunning && argOf(cur.Epoch)
	})
	// Failover: every lease expires now (no concierge counts as alive), the
	// scheduler places the task again at epoch+1.
	if _, err := s.store.ExpireLeases(ctx, time.Now().Add(time.Hour), time.Second, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	second := s.waitTask(t, tk.ID, "running again at the next epoch with the new credential", func(cur *models.Task) bool {
		return cur.State == models.TaskRunning && cur.Epoch > first.Epoch && argOf(cur.Epoch)
	})
	if argOf(first.Epoch) {
		t.Error("the new runner has the old epoch's credential")
	}
	if !slicesEqual(second.Description.Args, desc.Args) || second.Description.CredentialArg != 3 {
		t.Errorf("stored description changed: %+v", second.Description)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }
