package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/concierge/wire"
	"github.com/portier/portier/internal/testutil"
	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
	"github.com/portier/portier/portier/webhook"
)

// TestWebhookTaskEvents: a concierge's reports of a task failing and then
// running again deliver one task.failed (with the redacted error and exit
// code) and one task.recovered; a second failure report in a row does
// not deliver another task.failed.
func TestWebhookTaskEvents(t *testing.T) {
	st := modelstest.SQLite(t)
	e := newSchedEnv(t, st, time.Second)
	st.SetTaskURLPolicy(models.TaskURLPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e.s.hooks.Start()
	t.Cleanup(func() { _ = e.s.hooks.Close() })

	var mu sync.Mutex
	var got []webhook.Event
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		_ = json.Unmarshal(body, &ev)
		got = append(got, ev)
	}))
	defer recv.Close()
	ep, err := st.CreateWebhookEndpoint(context.Background(), models.WebhookEndpointInput{URL: recv.URL + "/r",
		Events: []string{models.WebhookTaskFailed, models.WebhookTaskRecovered}, Enabled: true}, models.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = ep.Secret
	mu.Unlock()

	e.node(t, "c1", 4)
	id := e.task(t, 1)
	var tk wire.Task
	version := ""
	testutil.Eventually(t, 10*time.Second, "the task assigned to c1", func() bool {
		a := e.assignment(t, "c1", version, time.Second)
		version = a.Version
		for _, x := range a.Tasks {
			if x.ID == id {
				tk = x
			}
		}
		return tk.ID != 0
	})
	exit := 3
	for _, r := range []wire.StatusReport{{State: "running"}, {State: "backoff", Error: "exit 3", ExitCode: &exit},
		{State: "backoff", Error: "exit 3", ExitCode: &exit}, {State: "running"}} {
		r.Epoch = tk.Epoch
		code, b := e.do(t, "POST", fmt.Sprintf(wire.PathStatusBatch, "c1"), wire.StatusBatch{Reports: []wire.TaskStatusReport{{TaskID: id, StatusReport: r}}})
		if code != 200 {
			t.Fatalf("report %s: %d %s", r.State, code, b)
		}
	}
	types := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, ev := range got {
			out = append(out, ev.Type)
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, "task.failed and task.recovered delivered", func() bool { return len(types()) >= 2 })
	if ts := types(); len(ts) != 2 || ts[0] != webhook.TaskFailed || ts[1] != webhook.TaskRecovered {
		t.Fatalf("events %v, want task.failed then task.recovered", ts)
	}
	mu.Lock()
	d, _ := json.Marshal(got[0].Data)
	mu.Unlock()
	var fd webhook.TaskData
	_ = json.Unmarshal(d, &fd)
	if fd.TaskID != id || fd.StreamID != e.stream || fd.Node != "c1" || fd.Error != "exit 3" || fd.ExitCode == nil || *fd.ExitCode != 3 {
		t.Errorf("task.failed data %+v", fd)
	}
}
