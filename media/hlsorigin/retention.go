package hlsorigin

import (
	"context"
	"time"
)

// defaultSegmentDuration stands in for the duration of a segment that no
// playlist this origin has seen listed (RFC 8216 6.2.2 needs one).
const defaultSegmentDuration = 10 * time.Second

// Sweep applies retention once: a segment that is not in its rendition's
// latest playlist is deleted once its duration plus the playlist's total
// duration have passed since it left the playlist (or, if no playlist
// this origin saw listed it, since it was stored); a stream's files are
// all deleted Retention after its last write. Its fence stays.
func (o *Origin) Sweep(ctx context.Context) {
	o.mu.Lock()
	ids := make([]int64, 0, len(o.streams))
	for id := range o.streams {
		ids = append(ids, id)
	}
	o.mu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		o.sweepStream(ctx, id)
	}
}

func (o *Origin) sweepStream(ctx context.Context, id int64) {
	st, err := o.stream(ctx, id)
	if err != nil {
		o.log.Warn("retention: cannot load stream", "stream", id, "err", err)
		return
	}
	defer st.mu.Unlock()
	now := o.p.Now()
	if len(st.files) == 0 || now.Sub(st.lastWrite) > o.p.Retention {
		for key := range st.files {
			if !o.deleteForRetention(ctx, st, key) {
				return
			}
		}
		if len(st.files) == 0 {
			o.log.Info("retention: stream removed", "stream", id, "last_write", st.lastWrite)
			st.gone = true
			o.mu.Lock()
			delete(o.streams, id)
			o.mu.Unlock()
		}
		return
	}
	for key, meta := range st.files {
		ob, ok := parseKey(key)
		if !ok || ob.Kind != kindSegment || st.listedAnywhere(key) {
			continue
		}
		deadline, ok := st.departed[key]
		if !ok {
			rs := st.latest[ob.Rendition]
			d := rs.pl.Target
			if d <= 0 {
				d = defaultSegmentDuration
			}
			deadline = meta.mod.Add(d + rs.total)
			st.departed[key] = deadline
		}
		if now.After(deadline) && !o.deleteForRetention(ctx, st, key) {
			return
		}
	}
}

// deleteForRetention deletes key (st.mu held); false on a storage error.
func (o *Origin) deleteForRetention(ctx context.Context, st *streamState, key string) bool {
	if err := o.p.Backend.Delete(ctx, key); err != nil {
		o.m.storageError()
		o.log.Warn("retention: delete failed", "key", key, "err", err)
		return false
	}
	st.removed(key)
	o.m.deletions.Inc()
	return true
}
