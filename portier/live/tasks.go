package live

import (
	"context"
	"errors"
	"fmt"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/compile"
)

// Task compilation follows live state:
//   - a stream going live gets one Task per enabled task config (pull configs
//     excepted), compiled from the config and the stream;
//   - a stream going offline has its tasks' desired state set to stopped;
//   - a config edited while its task runs is recompiled, and the task is
//     replaced only when compile.NeedsReplace says the command changed;
//   - pull configs feed the stream rather than consume it: their task runs
//     while the config is enabled, live or not.
// Every step is idempotent (models.Store.CreateCompiledTask never starts a
// config twice), so repeated or racing live events are harmless.

// compileOnLive is the store's LiveCompiler (models.Store.SetLiveCompiler):
// AddOrigin calls it inside the transaction that marks streams live, so a
// burst of publishes gets its tasks in the same shared transactions as
// its live flags. A config that does not compile becomes a failed task.
func (l *State) compileOnLive(sts map[int64]*models.Stream, cfgs []models.TaskConfig) []*models.Task {
	tasks := make([]*models.Task, 0, len(cfgs))
	for i := range cfgs {
		if st := sts[cfgs[i].StreamID]; st != nil { // nil: deleted meanwhile
			tasks = append(tasks, l.compileTask(&cfgs[i], st))
		}
	}
	return tasks
}

// streamLive follows a stream going live: its tasks were created with it
// (compileOnLive); place them now, not at the next tick.
func (l *State) streamLive() {
	l.sched.KickPlacement()
}

// StreamOffline stops the tasks of a stream that went offline.
func (l *State) StreamOffline(ctx context.Context, streamID int64, why string) {
	l.mu.Lock()
	delete(l.tracks, streamID)
	l.mu.Unlock()
	l.emitOffline(ctx, streamID, why)
	n, err := l.st.StopStreamTasks(ctx, streamID, "stream offline: "+why, models.TypePull)
	if err != nil {
		l.log.Error("stop tasks on offline", "err", err, "stream", streamID)
		return
	}
	if n > 0 {
		l.sched.Kick() // wake the concierges' long polls now
		l.log.Info("stream offline, tasks stopped", "stream", streamID, "tasks", n, "why", why)
	}
}

// startConfig compiles cfg and inserts its task unless one is active. A
// config that does not compile becomes a failed task whose last error says
// why, so the operator sees it.
func (l *State) startConfig(ctx context.Context, cfg *models.TaskConfig, st *models.Stream) (*models.Task, error) {
	t := l.compileTask(cfg, st)
	out, _, err := l.st.CreateCompiledTask(ctx, t)
	if err == nil {
		l.sched.KickPlacement() // place it now, not at the next tick
	}
	return out, err
}

func (l *State) compileTask(cfg *models.TaskConfig, st *models.Stream) *models.Task {
	id := cfg.ID
	t := &models.Task{
		ConfigID: &id, ConfigVersion: cfg.Version, StreamID: st.ID, Type: cfg.Type,
		DesiredState: models.DesiredRunning, State: models.TaskPending,
	}
	d, err := compileConfig(cfg, st, l.env)
	if err != nil {
		t.DesiredState, t.State = models.DesiredStopped, models.TaskFailed
		t.LastError, t.Reason = err.Error(), "compile failed"
		return t
	}
	t.Description = toModelDescription(d)
	return t
}

// compileConfig maps a stored task config onto the pure compiler.
func compileConfig(cfg *models.TaskConfig, st *models.Stream, env compile.Env) (compile.Description, error) {
	in := compile.TaskConfigInput{ID: cfg.ID, Type: cfg.Type, Name: cfg.Name, Labels: cfg.RequiredLabels()}
	switch cfg.Type {
	case models.TypeRestream:
		sp, err := cfg.Restream()
		if err != nil {
			return compile.Description{}, fmt.Errorf("decode restream spec: %w", err)
		}
		in.Target, in.Key, in.Format = sp.Target, sp.Key, sp.Format
	case models.TypeRecord:
		sp, err := cfg.Record()
		if err != nil {
			return compile.Description{}, fmt.Errorf("decode record spec: %w", err)
		}
		in.SegmentSeconds, in.Format = sp.SegmentSeconds, sp.Format
	case models.TypePull:
		sp, err := cfg.Pull()
		if err != nil {
			return compile.Description{}, fmt.Errorf("decode pull spec: %w", err)
		}
		in.Source = sp.Source
	case models.TypeHLS:
		sp, err := cfg.HLS()
		if err != nil {
			return compile.Description{}, fmt.Errorf("decode hls spec: %w", err)
		}
		in.SegmentSeconds = sp.SegmentSeconds
		for _, r := range sp.Renditions {
			in.Renditions = append(in.Renditions, r.Compile())
		}
	}
	return compile.Compile(in, compile.StreamState{
		ID: st.ID, App: st.Application.Name, Name: st.Name, Key: st.PublishKey,
		Tracks: tracksOf(models.ParseLiveCodecInfo(st.CodecInfo).StreamCodec),
	}, env)
}

// tracksOf is what a relay's codec report tells of a stream's tracks:
// nothing before its first report (both codecs empty).
func tracksOf(c models.StreamCodec) compile.Tracks {
	return compile.Tracks{Known: c.VideoCodec != "" || c.AudioCodec != "", Video: c.VideoCodec != "", Audio: c.AudioCodec != ""}
}

// followTracks recompiles the tasks of each published stream whose tracks
// (video, audio) differ from those this control plane saw last, after the
// origin's report was stored: a task compiled when the stream went live,
// before any report, mapped audio and video; an HLS task of a video-only
// stream is replaced by one that maps video only (compile.NeedsReplace
// leaves every other task running). l.tracks is guarded by l.mu, never
// held across the store calls.
func (l *State) followTracks(ctx context.Context, reports []models.StreamStatReport) {
	for _, r := range reports {
		tr := tracksOf(r.Codec)
		if !r.Publisher || !tr.Known {
			continue
		}
		// (The cached target's Live may predate the publish:
		// ConfigChanged reads the stream itself.)
		t, _, err := l.FindStream(ctx, r.App, r.Name)
		if err != nil {
			continue
		}
		l.mu.Lock()
		old, seen := l.tracks[t.StreamID]
		l.tracks[t.StreamID] = tr
		l.mu.Unlock()
		if seen && old == tr {
			continue
		}
		if err := l.StreamChanged(ctx, t.StreamID); err != nil {
			l.log.Error("recompile tasks for the stream's tracks", "err", err, "stream", t.StreamID,
				"video", tr.Video, "audio", tr.Audio)
			continue
		}
		l.log.Info("stream tracks reported, tasks recompiled", "stream", t.StreamID, "video", tr.Video, "audio", tr.Audio)
	}
}

// toModelDescription keeps what a concierge runs (the type and version
// are on the Task and recomputed from the rest).
func toModelDescription(d compile.Description) models.TaskDescription {
	md := models.TaskDescription{
		Command: d.Command, Args: d.Args, Input: d.Input, Outputs: d.Outputs, Env: d.Env, Dirs: d.Dirs, Cost: d.Cost, Labels: d.Labels,
		Relay: d.Relay, RelayArgs: d.RelayArgs, CredentialArg: d.CredentialArg,
	}
	if d.RelayPull != nil {
		md.RelayPull = &models.RelayPull{Source: d.RelayPull.Source}
	}
	return md
}

func fromModelDescription(typ string, d models.TaskDescription) compile.Description {
	cd := compile.Description{
		Type: typ, Command: d.Command, Args: d.Args, Input: d.Input, Outputs: d.Outputs, Env: d.Env, Dirs: d.Dirs, Cost: d.Cost, Labels: d.Labels,
		Relay: d.Relay, RelayArgs: d.RelayArgs, CredentialArg: d.CredentialArg,
	}
	if d.RelayPull != nil {
		cd.RelayPull = &compile.RelayPull{Source: d.RelayPull.Source}
	}
	return cd
}

// needsReplace compares what is stored for a running task with a fresh
// compilation, through the stored form so fields not stored cannot differ.
func needsReplace(running *models.Task, next *models.Task) bool {
	if next.State == models.TaskFailed {
		return true
	}
	return compile.NeedsReplace(
		fromModelDescription(running.Type, running.Description),
		fromModelDescription(next.Type, next.Description))
}

// ConfigChanged brings the tasks of config cfgID in line with it after
// the API created, edited, enabled or disabled it. The API calls it after
// committing the change. An edit that changes the command replaces the
// running task (stop old, create new, one transaction); an edit that does not
// (a rename) only records the new config version on the running task.
func (l *State) ConfigChanged(ctx context.Context, cfgID int64) error {
	cfg, err := l.st.CompileConfig(ctx, cfgID)
	if errors.Is(err, models.ErrNotFound) {
		return nil // deleted: its tasks lost their config (see ConfigDeleting)
	}
	if err != nil {
		return err
	}
	cur, err := l.st.ActiveConfigTask(ctx, cfgID)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	if errors.Is(err, models.ErrNotFound) {
		cur = nil
	}
	st, err := l.st.StreamByID(ctx, cfg.StreamID)
	if err != nil {
		return err
	}
	wanted := cfg.Enabled && (st.Live || cfg.Type == models.TypePull)
	if !wanted {
		if cur != nil {
			reason := "config disabled"
			if cfg.Enabled {
				reason = "stream offline"
			}
			return l.st.StopCompiledTask(ctx, cur.ID, reason)
		}
		return nil
	}
	if cur == nil {
		_, err := l.startConfig(ctx, cfg, st)
		return err
	}
	next := l.compileTask(cfg, st)
	if !needsReplace(cur, next) {
		return l.st.SetTaskConfigVersion(ctx, cur.ID, cfg.Version)
	}
	return l.st.ReplaceCompiledTask(ctx, cur.ID, next, "replaced: config edited")
}

// ConfigDeleting stops the running task of a config about to be
// deleted. The API calls it before deleting (afterwards the task no longer
// points at its config).
func (l *State) ConfigDeleting(ctx context.Context, cfgID int64) error {
	cur, err := l.st.ActiveConfigTask(ctx, cfgID)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return l.st.StopCompiledTask(ctx, cur.ID, "config deleted")
}

// StreamChanged re-runs ConfigChanged for every config of a stream
// after a change that reaches its tasks (a key rotation changes what pull
// tasks publish with; enabling or disabling the stream).
func (l *State) StreamChanged(ctx context.Context, streamID int64) error {
	cfgs, err := l.st.ListTaskConfigs(ctx, streamID)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cfgs {
		errs = append(errs, l.ConfigChanged(ctx, c.ID))
	}
	return errors.Join(errs...)
}
