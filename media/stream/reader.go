package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for ReaderParams.
const (
	DefaultReaderMaxUnits = 512
	DefaultReaderMaxBytes = 16 << 20
	DefaultMaxSkips       = 3
	DefaultSkipWindow     = 30 * time.Second
)

// ReaderParams configures a Reader. Zero values select the defaults.
type ReaderParams struct {
	// WaitTimeout is how long Read waits for a publisher when the path has
	// none. Zero: do not wait, unless an on-demand source is configured
	// (then HubParams.OnDemandWait).
	WaitTimeout time.Duration
	// MaxUnits and MaxBytes bound the reader's queue. A reader whose queue
	// is full skips to the next keyframe.
	MaxUnits int
	MaxBytes int
	// A reader that skips more than MaxSkips times within SkipWindow is
	// dropped with ErrDropped.
	MaxSkips   int
	SkipWindow time.Duration
	// CoalesceFrames, when positive, holds back a waiting reader's wake-up
	// until that many video units have been queued since it last looked,
	// or until the queued units span CoalesceSpan of media time, so that
	// the reader runs (and writes to its client) once per CoalesceFrames
	// video frames instead of once per unit; audio and data ride along.
	// Media is delayed by at most CoalesceFrames-1 frame intervals plus
	// one audio interval, never more than CoalesceSpan of media time, and
	// a publisher that goes quiet has its last units go out CoalesceWait
	// after its last write. Streams without video are not affected. Zero:
	// every unit wakes a waiting reader.
	CoalesceFrames int
	// Direct, when set, lets the publisher hand units to a waiting reader
	// itself, at the moment the reader would be woken for them (so after
	// CoalesceFrames video frames), instead of waking the reader's
	// goroutine: one wake-up and context switch less per batch and player.
	// Direct is called from Publisher.Write with the reader's lock held:
	// it must not block (a non-blocking socket write fits) and must not
	// call the Reader. It reports whether it took the units (they leave
	// the queue) and, when it took them, whether it left work for the
	// reader's goroutine (a partial write): NextUntil then returns an
	// empty batch so that the goroutine finishes it. When it did not take
	// them they stay queued and the reader is woken as usual. The
	// publisher calls Direct only while the reader's goroutine is waiting
	// in NextUntil, so the units handed to it come after everything
	// NextUntil returned before; and only within DirectBudget of each
	// Write, leaving the rest of the readers to their goroutines.
	Direct func(units []*Unit) (taken, flush bool)
	// Wake, when set, stands for a goroutine waiting in NextUntil: the
	// reader's owner has none while there is nothing to do. The owner
	// counts as running from Hub.Read until a TryNext finds nothing (and
	// no end); from then on the reader calls Wake when it would wake a
	// waiting goroutine (a batch is due, the stream ended, the reader was
	// dropped or closed), once, and the owner is running again: it calls
	// TryNext until that reports nothing, writing what it returns. The
	// running state lives under the reader's lock with the queue, so no
	// wake-up is lost and the owner runs once at a time. After TryNext
	// reports the end the owner stays running: Wake is not called again.
	// The publisher calls Direct whenever the owner is not holding a batch
	// from TryNext. Wake is called without the reader's locks held, from
	// the publisher's goroutine among others: it must not block (starting
	// a goroutine fits). NextUntil is not for such a reader.
	Wake func()
	// Internal marks a reader that is part of the system rather than a
	// viewer (a task's input, a thumbnail grab): it counts in
	// StreamInfo.InternalReaders as well as in Readers.
	Internal bool
}

// DirectBudget bounds the time one Publisher.Write spends in
// ReaderParams.Direct calls; readers after it are woken instead, so that a
// large fan-out still spreads over every core and the publisher's own reads
// are not held up.
const DirectBudget = 5 * time.Millisecond

// CoalesceSpan bounds how much media time ReaderParams.CoalesceFrames holds
// back.
const CoalesceSpan = 100 // milliseconds of DTS

// CoalesceWait bounds how long ReaderParams.CoalesceFrames holds units back
// in wall time: once the publisher has been quiet this long, readers get what
// they hold, and the first unit after the pause wakes them at once. Readers
// keep no timers of their own.
const CoalesceWait = 100 * time.Millisecond

func (p *ReaderParams) setDefaults() {
	if p.MaxUnits < 8 {
		p.MaxUnits = DefaultReaderMaxUnits
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultReaderMaxBytes
	}
	if p.MaxSkips <= 0 {
		p.MaxSkips = DefaultMaxSkips
	}
	if p.SkipWindow <= 0 {
		p.SkipWindow = DefaultSkipWindow
	}
}

// Reader receives a stream's units through a bounded queue. It starts with
// the codec headers and the latest GOP from a keyframe. Next and Close may be
// called from one goroutine; the publisher fills the queue concurrently.
type Reader struct {
	s *stream
	p ReaderParams

	signal    chan struct{} // capacity 1: "queue became non-empty or ended"; nil with Wake
	ended     chan struct{} // closed when err is set
	closeOnce sync.Once

	mu     sync.Mutex // guards the fields below; never held across a blocking channel op
	q      []*Unit
	spare  []*Unit // the batch returned by the previous Next
	qBytes int
	// extraUnits/extraBytes widen the bounds by the size of the initial
	// headers and GOP (bounded by the hub's GOP limits) until the reader
	// takes them, so that a long GOP does not count as falling behind.
	extraUnits int
	extraBytes int
	joining    bool
	waitKey    bool
	woken      bool // a wake-up is pending: the reader has not looked at q since
	frames     int  // video units pushed since the reader last looked at q
	idle       bool // the publisher was quiet for CoalesceWait: the next unit wakes
	busy       bool // NextUntil returned a batch and has not been called since: no Direct
	flush      bool // Direct left work: NextUntil returns an empty batch
	running    bool // with Wake: the owner is running (see ReaderParams.Wake)
	// joinSeq is the seq of the snapshot the reader joined from: a unit
	// pushed after join but already in that snapshot is not queued twice.
	joinSeq   uint64
	err       error
	skipTimes []time.Time

	bytesOut atomic.Uint64
	skips    atomic.Uint64
}

func newReader(s *stream, p ReaderParams) *Reader {
	r := &Reader{s: s, p: p, joining: true, ended: make(chan struct{})}
	if p.Wake != nil {
		r.running = true // its owner is setting it up
	} else {
		r.signal = make(chan struct{}, 1)
	}
	return r
}

// Path returns the stream path.
func (r *Reader) Path() string { return r.s.path }

// BytesOut returns the payload bytes handed out by Next so far.
func (r *Reader) BytesOut() uint64 { return r.bytesOut.Load() }

// Skips returns how many times the reader fell behind and skipped ahead.
func (r *Reader) Skips() uint64 { return r.skips.Load() }

// Next returns all queued units, in order, waiting for at least one. The
// returned slice is valid until the next call to Next. After the stream ends
// (ErrEnded) or the reader is dropped (ErrDropped), Next first returns what is
// still queued, then the error.
func (r *Reader) Next(ctx context.Context) ([]*Unit, error) {
	return r.NextUntil(ctx, nil)
}

// NextUntil is Next that also gives up, with ErrClosed, when stop is closed
// (for example when the client's connection is gone), so that callers need
// no goroutine to tie the two together. A nil stop never fires.
func (r *Reader) NextUntil(ctx context.Context, stop <-chan struct{}) ([]*Unit, error) {
	for {
		if batch, ok, err := r.TryNext(); ok || err != nil {
			return batch, err
		}
		select {
		case <-r.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stop:
			return nil, ErrClosed
		}
	}
}

// TryNext is Next without the wait, for readers with ReaderParams.Wake: ok
// reports whether it returned a batch (which is empty when a Direct call
// left the rest of a write to the owner). With nothing queued it returns
// ok false, and the error once the reader has ended; the publisher may
// then call Direct again. Without an error, ok false also means the owner
// has stopped running: the reader calls Wake for what comes next.
func (r *Reader) TryNext() (batch []*Unit, ok bool, err error) {
	r.mu.Lock()
	r.woken, r.frames, r.busy = false, 0, false
	if r.flush && len(r.q) == 0 && r.err == nil {
		r.flush, r.busy = false, true
		r.mu.Unlock()
		return r.spare[:0], true, nil
	}
	r.flush = false
	if len(r.q) > 0 {
		r.busy = true
		batch = r.q
		clear(r.spare)
		r.q = r.spare[:0]
		r.spare = batch
		r.qBytes, r.extraUnits, r.extraBytes = 0, 0, 0
		r.mu.Unlock()
		r.countOut(batch)
		return batch, true, nil
	}
	err = r.err
	r.running = err != nil
	r.mu.Unlock()
	return nil, false, err
}

// countOut adds the payload bytes of units handed out to the counters.
func (r *Reader) countOut(units []*Unit) {
	var n uint64
	for _, u := range units {
		n += uint64(len(u.Payload))
	}
	r.bytesOut.Add(n)
	r.s.bytesOut.Add(n)
	r.s.hub.totals.bytesOut.Add(n)
}

// Close detaches the reader from the stream. It is idempotent.
func (r *Reader) Close() {
	r.s.hub.detach(r)
	r.end(ErrClosed)
}

// join seeds the queue from the stream's snapshot. The reader is already in
// the stream's reader list, so every unit written after the snapshot reaches
// it through push; units also contained in the snapshot are discarded by seq.
func (r *Reader) join() {
	snap := r.s.snap.Load()
	r.mu.Lock()
	pending := r.q
	r.q, r.qBytes, r.joining, r.joinSeq = nil, 0, false, snap.seq
	if snap.gopOK && len(snap.gop) > 0 {
		r.appendHeaders(snap, snap.gop[0].DTS)
		for _, u := range snap.gop {
			r.q = append(r.q, u)
			r.qBytes += len(u.Payload)
		}
	} else {
		r.waitKey = true
	}
	r.extraUnits, r.extraBytes = len(r.q), r.qBytes
	cur := r.s.snap.Load()
	var dropped bool
	for _, u := range pending {
		if u.seq > snap.seq {
			dropped = r.admit(u, cur) || dropped
		}
	}
	notify := len(r.q) > 0
	r.woken = r.woken || notify
	notify = notify && r.claim()
	r.mu.Unlock()
	if notify {
		r.notify()
	}
	if dropped {
		go r.s.hub.detach(r)
	}
}

// push is called by Publisher.Write for every unit; it never blocks (but
// for ReaderParams.Direct, when direct is true). It reports whether it called
// Direct.
func (r *Reader) push(u *Unit, snap *snapshot, direct bool) (directed bool) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return false
	}
	if r.joining {
		// Between joining the list and taking the snapshot: a window of
		// a few units at most; bounded all the same.
		if len(r.q) < r.p.MaxUnits {
			r.q = append(r.q, u)
		}
		r.mu.Unlock()
		return false
	}
	if u.seq <= r.joinSeq {
		// Written before the snapshot join seeded the queue from, but
		// pushed after join: already queued.
		r.mu.Unlock()
		return false
	}
	dropped := r.admit(u, snap)
	notify := dropped
	if u.Kind == KindVideo {
		r.frames++
	}
	if !r.woken && len(r.q) > 0 && r.wakeFor(u, snap) {
		r.idle = false
		if direct && !dropped && !r.busy && r.p.Direct != nil {
			directed = true
			if taken, flush := r.p.Direct(r.q); taken {
				r.countOut(r.q)
				clear(r.q)
				r.q, r.qBytes, r.extraUnits, r.extraBytes, r.frames = r.q[:0], 0, 0, 0, 0
				r.flush = flush
			}
		}
		if len(r.q) > 0 || r.flush {
			r.woken, notify = true, true
		}
	}
	notify = notify && r.claim()
	r.mu.Unlock()
	if notify {
		r.notify()
	}
	if dropped {
		// Logging and detaching are left to another goroutine: the
		// publisher takes no hub lock here.
		go func() {
			r.s.hub.log.Warn("reader dropped: fell behind too often", "path", r.s.path, "skips", r.skips.Load())
			r.s.hub.detach(r)
		}()
	}
	return directed
}

// wakeFor reports whether queuing u should wake a waiting reader (under
// r.mu, with r.q non-empty).
func (r *Reader) wakeFor(u *Unit, snap *snapshot) bool {
	return r.p.CoalesceFrames <= 0 || r.idle || r.frames >= r.p.CoalesceFrames || !snap.hasVideo || u.DTS-r.q[0].DTS >= CoalesceSpan
}

// release hands the reader what it holds for coalescing and makes the next
// unit wake it at once (the publisher went quiet: see stream.releaseHeld).
func (r *Reader) release() {
	r.mu.Lock()
	r.idle = true
	notify := !r.woken && len(r.q) > 0 && r.err == nil
	r.woken = r.woken || notify
	notify = notify && r.claim()
	r.mu.Unlock()
	if notify {
		r.notify()
	}
}

// admit queues u under r.mu and reports whether the reader was dropped.
func (r *Reader) admit(u *Unit, snap *snapshot) bool {
	if r.waitKey {
		start := (u.Kind == KindVideo && u.Key) || (!snap.hasVideo && !u.Header)
		if !start {
			return false
		}
		r.waitKey = false
		r.appendHeaders(snap, u.DTS)
	}
	if len(r.q) > 0 && (len(r.q) >= r.p.MaxUnits+r.extraUnits || r.qBytes+len(u.Payload) > r.p.MaxBytes+r.extraBytes) {
		if r.lag() {
			return true
		}
		return r.admit(u, snap)
	}
	r.q = append(r.q, u)
	r.qBytes += len(u.Payload)
	return false
}

// appendHeaders queues the current codec headers stamped with dts.
func (r *Reader) appendHeaders(snap *snapshot, dts int64) {
	for _, h := range [...]*Unit{snap.meta, snap.video, snap.audio} {
		if h != nil {
			r.q = append(r.q, h.restamped(dts))
			r.qBytes += len(h.Payload)
		}
	}
}

// lag clears the queue and makes the reader resume at the next keyframe. It
// reports whether the reader has now skipped too often and is dropped.
func (r *Reader) lag() bool {
	clear(r.q)
	r.q, r.qBytes, r.extraUnits, r.extraBytes = r.q[:0], 0, 0, 0
	r.waitKey = true
	r.skips.Add(1)
	r.s.skips.Add(1)
	r.s.hub.totals.skips.Add(1)
	now := time.Now()
	keep := r.skipTimes[:0]
	for _, t := range r.skipTimes {
		if now.Sub(t) < r.p.SkipWindow {
			keep = append(keep, t)
		}
	}
	r.skipTimes = append(keep, now)
	if len(r.skipTimes) <= r.p.MaxSkips {
		return false
	}
	r.setErrLocked(ErrDropped)
	r.s.drops.Add(1)
	r.s.hub.totals.drops.Add(1)
	return true
}

// resync makes the reader restart at the next keyframe with fresh headers
// (used when a new publisher takes over). Called under Hub.mu.
func (r *Reader) resync() {
	r.mu.Lock()
	if !r.joining && r.err == nil {
		r.waitKey = true
	}
	r.mu.Unlock()
}

// end sets the reader's terminal error (first one wins) and wakes it.
func (r *Reader) end(err error) {
	r.mu.Lock()
	r.setErrLocked(err)
	notify := r.claim()
	r.mu.Unlock()
	if notify {
		r.notify()
	}
}

func (r *Reader) setErrLocked(err error) {
	if r.err != nil {
		return
	}
	r.err = err
	if err == ErrDropped {
		clear(r.q)
		r.q, r.qBytes = r.q[:0], 0
	}
	r.closeOnce.Do(func() { close(r.ended) })
}

// claim reports, under r.mu, whether a wake-up is due: always for a
// goroutine that may wait in NextUntil; for an owner with Wake only when
// it is not running, and it is running from now on.
func (r *Reader) claim() bool {
	if r.p.Wake == nil {
		return true
	}
	if r.running {
		return false
	}
	r.running = true
	return true
}

// notify sends the wake-up claim granted, without r.mu held.
func (r *Reader) notify() {
	if r.p.Wake != nil {
		r.p.Wake()
		return
	}
	select {
	case r.signal <- struct{}{}:
	default:
	}
}
