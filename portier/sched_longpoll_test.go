package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/media/httpserve"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestLongPollOutlivesHTTPTimeouts: a concierge's long poll may wait longer
// than --http-read-timeout and --http-write-timeout (an operator who sets
// them short must not cut every concierge off): the poll is answered, not
// dropped when the read deadline cancels its context or the write deadline
// kills its answer.
func TestLongPollOutlivesHTTPTimeouts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := modelstest.Stores(t)[0].Store
	s, err := New(Params{Store: st, ClusterToken: "cluster-secret", Logger: slog.New(slog.DiscardHandler),
		Live: LiveParams{HeartbeatInterval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	s.sched.Start(ctx)
	if _, err := st.RegisterNode(ctx, models.Node{Name: "c1", Role: models.NodeRoleConcierge, Capacity: 10}, time.Now()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpserve.NewServer(s.Handler(), httpserve.Timeouts{ReadHeader: time.Second, Read: time.Second, Write: time.Second, Idle: time.Second})
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + l.Addr().String() + fmt.Sprintf(wire.PathAssignments, "c1")

	get := func(after string, wait time.Duration) (wire.Assignment, time.Duration) {
		t.Helper()
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"?after="+after+"&wait_ms="+fmt.Sprint(wait.Milliseconds()), nil)
		req.Header.Set("Authorization", "Bearer cluster-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("long poll of %v through 1 s timeouts: %v", wait, err)
		}
		defer resp.Body.Close()
		var as wire.Assignment
		if err := json.NewDecoder(resp.Body).Decode(&as); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("long poll of %v through 1 s timeouts: HTTP %d, %v", wait, resp.StatusCode, err)
		}
		return as, time.Since(t0)
	}
	first, _ := get("", 0)
	_, took := get(first.Version, 2500*time.Millisecond)
	if took < 2*time.Second {
		t.Fatalf("the poll with nothing new answered after %v, before its 2.5 s wait", took)
	}
}
