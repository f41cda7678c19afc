package nodeapi

import (
	"context"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/webhook"
)

// Emitter takes the events outgoing webhooks deliver
// (portier/webhook.Dispatcher); it must not wait.
type Emitter interface {
	Emit(ctx context.Context, ev webhook.Event) error
}

// emitTaskEvents reports the tasks a status batch saw fail or recover.
// The store decides (ReportResult.Failed, Recovered) inside the batch's
// transaction, so each is reported once whichever replica takes the batch.
// reps' errors are already redacted (redactReports).
func (s *Server) emitTaskEvents(ctx context.Context, node string, reps []models.TaskReport, res []models.ReportResult) {
	if s.p.Webhooks == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	apps := map[int64]string{}
	for i, r := range res {
		if r.Err != nil || r.Task == nil || (!r.Failed && !r.Recovered) {
			continue
		}
		t := r.Task
		app, ok := apps[t.StreamID]
		if !ok {
			if st, err := s.p.Store.StreamByID(ctx, t.StreamID); err == nil {
				app = st.Application.Name
			}
			apps[t.StreamID] = app
		}
		typ := webhook.TaskRecovered
		d := webhook.TaskData{TaskID: t.ID, StreamID: t.StreamID, Type: t.Type, Node: node, State: reps[i].State, Restarts: t.Restarts}
		if r.Failed {
			typ, d.Error, d.ExitCode = webhook.TaskFailed, reps[i].Error, reps[i].ExitCode
		}
		_ = s.p.Webhooks.Emit(ctx, webhook.Event{Type: typ, Application: app, Data: d})
	}
}
