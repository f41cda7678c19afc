package hlsorigin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/portier/portier/internal/hlscred"
)

// streamState is what the origin knows of one stream. Its mutex guards
// every field and, unlike most of our locks, is held across the few
// backend calls that must be atomic with the state: loading it, persisting
// a raised fence, committing a playlist (so an older writer cannot land a
// playlist after a newer one's), and retention's deletions. Segment bodies
// are received and stored without it, so the renditions of one stream
// upload in parallel.
type streamState struct {
	mu     sync.Mutex
	id     int64
	loaded bool
	fence  hlscred.Cred // highest (task, epoch) that wrote; zero: none
	gone   bool         // removed by retention: callers look the stream up again
	files  map[string]fileMeta
	bytes  int64
	// lastWrite is the time of the last accepted write (after a restart:
	// the newest object's modification time).
	lastWrite time.Time
	// latest is each rendition's latest media playlist, by rendition.
	latest map[string]renditionState
	// departed holds segments that left their rendition's playlist, with
	// the time after which retention deletes them.
	departed map[string]time.Time
	// uploads is how long each recent segment took to upload, until a
	// playlist lists it (for the slow-upload warning).
	uploads map[string]time.Duration
	// probes is each rendition's media, probed for the master playlist
	// in the first segment of its current run.
	probes map[string]probeResult
}

type fileMeta struct {
	size int64
	mod  time.Time
}

type renditionState struct {
	pl    playlist
	keys  map[string]time.Duration // listed object key → segment duration
	total time.Duration
}

func newStreamState(id int64) *streamState {
	return &streamState{id: id, files: map[string]fileMeta{}, latest: map[string]renditionState{},
		departed: map[string]time.Time{}, uploads: map[string]time.Duration{},
		probes: map[string]probeResult{}}
}

// fenceRecord is the persisted fence of a stream.
type fenceRecord struct {
	TaskID int64 `json:"task_id"`
	Epoch  int64 `json:"epoch"`
}

// stream returns the stream's state, loaded from the backend on first
// use. It returns with st.mu held.
func (o *Origin) stream(ctx context.Context, id int64) (*streamState, error) {
	o.mu.Lock()
	st, ok := o.streams[id]
	if !ok {
		st = newStreamState(id)
		o.streams[id] = st
	}
	o.mu.Unlock()
	st.mu.Lock()
	if st.gone {
		st.mu.Unlock()
		return o.stream(ctx, id)
	}
	if st.loaded {
		return st, nil
	}
	if err := o.load(ctx, st); err != nil {
		st.mu.Unlock()
		o.m.storageError()
		return nil, fmt.Errorf("load stream %d: %w", id, err)
	}
	st.loaded = true
	return st, nil
}

// load reads the stream's fence, files and media playlists (st.mu held).
func (o *Origin) load(ctx context.Context, st *streamState) error {
	b, err := o.readAll(ctx, fenceKey(st.id), 4096)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		var f fenceRecord
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("fence record %s: %w", fenceKey(st.id), err)
		}
		st.fence = hlscred.Cred{StreamID: st.id, TaskID: f.TaskID, Epoch: f.Epoch}
	}
	infos, err := o.p.Backend.List(ctx, streamPrefix(st.id))
	if err != nil {
		return err
	}
	for _, in := range infos {
		st.files[in.Key] = fileMeta{size: in.Size, mod: in.ModTime}
		st.bytes += in.Size
		if in.ModTime.After(st.lastWrite) {
			st.lastWrite = in.ModTime
		}
		ob, ok := parseKey(in.Key)
		if !ok || ob.Kind != kindMedia {
			continue
		}
		b, err := o.readAll(ctx, in.Key, maxPlaylistBytes)
		if err != nil {
			continue // gone meanwhile, or unreadable: retention treats the rendition as unlisted
		}
		if pl, err := parsePlaylist(b); err == nil {
			st.latest[ob.Rendition] = renditionOf(ob, pl)
		}
	}
	return nil
}

func renditionOf(ob object, pl playlist) renditionState {
	rs := renditionState{pl: pl, keys: map[string]time.Duration{}, total: pl.Total()}
	for _, s := range pl.Segments {
		if so, ok := resolve(ob, s.URI); ok {
			rs.keys[so.Key()] = s.Duration
		}
	}
	return rs
}

// stored records a stored object (st.mu held).
func (st *streamState) stored(in Info, now time.Time) {
	st.bytes += in.Size - st.files[in.Key].size
	st.files[in.Key] = fileMeta{size: in.Size, mod: now}
	st.lastWrite = now
}

// removed forgets a deleted object (st.mu held).
func (st *streamState) removed(key string) {
	st.bytes -= st.files[key].size
	delete(st.files, key)
	delete(st.departed, key)
	delete(st.uploads, key)
}

// listedAnywhere reports whether any rendition's latest playlist lists key.
func (st *streamState) listedAnywhere(key string) bool {
	for _, rs := range st.latest {
		if _, ok := rs.keys[key]; ok {
			return true
		}
	}
	return false
}

// raiseFence checks c against the stream's fence and, when c is newer,
// persists it as the new fence (st.mu held).
func (o *Origin) raiseFence(ctx context.Context, st *streamState, c hlscred.Cred) error {
	if c.Before(st.fence) {
		return &fencedError{cred: c, fence: st.fence}
	}
	if c.TaskID == st.fence.TaskID && c.Epoch == st.fence.Epoch {
		return nil
	}
	b, _ := json.Marshal(fenceRecord{TaskID: c.TaskID, Epoch: c.Epoch})
	if _, err := o.p.Backend.Put(ctx, fenceKey(st.id), strings.NewReader(string(b))); err != nil {
		o.m.storageError()
		return fmt.Errorf("persist fence of stream %d: %w", st.id, err)
	}
	if st.fence.TaskID != 0 {
		o.log.Info("hls writer superseded", "stream", st.id, "old_task", st.fence.TaskID, "old_epoch", st.fence.Epoch,
			"task", c.TaskID, "epoch", c.Epoch)
	}
	st.fence = c
	return nil
}

// fencedError is a write from a task or epoch older than the stream's
// current writer.
type fencedError struct{ cred, fence hlscred.Cred }

func (e *fencedError) Error() string {
	return fmt.Sprintf("stream %d is written by task %d epoch %d; this credential (task %d epoch %d) is older and fenced off",
		e.fence.StreamID, e.fence.TaskID, e.fence.Epoch, e.cred.TaskID, e.cred.Epoch)
}

// readAll reads a whole (small) object, at most limit bytes.
func (o *Origin) readAll(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, _, err := o.p.Backend.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}
