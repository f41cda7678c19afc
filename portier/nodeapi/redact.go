package nodeapi

import (
	"context"

	secret "github.com/portier/portier/internal/redact"
	"github.com/portier/portier/models"
)

// redactReports removes the secrets the control plane knows of each
// reported task (its command line, its stream's publish key, its config's
// target, key and source) from the reports' error texts and log tails,
// before they are stored and shown to anyone who may read the task, and
// then shortens them to what is stored. The concierge redacted them
// already; this is the second line, for concierges of older versions and
// for secrets the concierge cannot know.
func (s *Server) redactReports(ctx context.Context, reps []models.TaskReport) error {
	defer func() {
		for i := range reps {
			reps[i].Error = truncateTail(reps[i].Error, maxErrorText)
			reps[i].LogTail = truncateLog(reps[i].LogTail, maxLogTail)
		}
	}()
	var ids []int64
	for _, r := range reps {
		if r.Error != "" || r.LogTail != "" {
			ids = append(ids, r.TaskID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	srcs, err := s.p.Store.TaskSecretSources(ctx, ids)
	if err != nil {
		return err
	}
	reds := map[int64]*secret.Redactor{}
	for i := range reps {
		r := &reps[i]
		if r.Error == "" && r.LogTail == "" {
			continue
		}
		red, ok := reds[r.TaskID]
		if !ok {
			red = secret.New(taskSecrets(srcs[r.TaskID])...)
			reds[r.TaskID] = red
		}
		r.Error, r.LogTail = red.String(r.Error), red.String(r.LogTail)
	}
	return nil
}

// taskSecrets lists the secret values of one task (see redactReports).
func taskSecrets(src models.TaskSecretSource) []string {
	out := secret.TaskSecrets(src.Type, src.Description.Args)
	out = append(out, src.StreamKey)
	cfg := &models.TaskConfig{Type: src.ConfigType, Spec: src.ConfigSpec}
	switch src.ConfigType {
	case models.TypeRestream:
		if sp, err := cfg.Restream(); err == nil {
			out = append(out, sp.Key)
			out = append(out, secret.URLSecrets(sp.Target, true)...)
		}
	case models.TypePull:
		if sp, err := cfg.Pull(); err == nil {
			out = append(out, secret.URLSecrets(sp.Source, false)...)
		}
	}
	return out
}
