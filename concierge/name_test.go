package concierge_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/concierge"
	"github.com/portier/portier/concierge/supervisor/supervisortest"
)

// A concierge whose name a live node of another address holds is refused
// by the control plane, and Run ends with ErrNameTaken and a message that
// names the clash and the fix (the command exits non-zero with it).
func TestConciergeNameTaken(t *testing.T) {
	sv := supervisortest.Ochinchina(t)
	s := startStack(t, sv)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := s.store.NodeByName(context.Background(), "c1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first concierge never registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := concierge.New(concierge.Params{Control: s.hs.URL, ClusterToken: "tok", Name: "c1", Capacity: 1,
		RelayRTMP: "127.0.0.1:19350", SupervisorBinary: sv, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, concierge.ErrNameTaken) || !strings.Contains(err.Error(), `"c1"`) || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("Run = %v, want ErrNameTaken naming c1 and --name", err)
	}
}
