package stream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// directRecorder is a ReaderParams.Direct that takes, refuses or takes with
// a rest left, as told, and records what it took.
type directRecorder struct {
	mu    sync.Mutex
	mode  string // "take", "refuse" or "rest"
	took  []string
	calls int
}

func (d *directRecorder) direct(units []*Unit) (taken, flush bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.mode == "refuse" {
		return false, false
	}
	d.took = append(d.took, describe(units))
	return true, d.mode == "rest"
}

func (d *directRecorder) set(mode string) (took []string, calls int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	took, calls = d.took, d.calls
	d.mode, d.took, d.calls = mode, nil, 0
	return took, calls
}

// waitWaiting waits until r's goroutine is back in NextUntil.
func waitWaiting(t *testing.T, r *Reader) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		busy := r.busy
		r.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the reader's goroutine never came back to NextUntil")
}

// The publisher hands a waiting reader its batch through Direct instead of
// waking it; never while the reader's goroutine still has the previous batch
// (order); a refused batch goes to the goroutine; a rest left by Direct makes
// NextUntil return an empty batch.
func TestReaderDirect(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/d", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	d := &directRecorder{mode: "take"}
	r, err := h.Read(ctxT(t, 5*time.Second), "live/d", ReaderParams{CoalesceFrames: 1, Direct: d.direct})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2) // the join's headers and GOP come through Next

	// The goroutine has not come back for more: Direct must not overtake
	// what it may still be writing.
	mustWrite(t, p, audio(10), inter(40))
	if _, calls := d.set("take"); calls != 0 {
		t.Fatal("Direct called while the reader's goroutine had a batch")
	}
	if got := describe(readN(t, r, 2)); got != describe([]*Unit{audio(10), inter(40)}) {
		t.Fatalf("queued batch = %s", got)
	}

	batches := make(chan []*Unit, 4)
	ctx := ctxT(t, 10*time.Second)
	go func() {
		for {
			b, err := r.Next(ctx)
			if err != nil {
				close(batches)
				return
			}
			batches <- append([]*Unit(nil), b...)
		}
	}()
	waitWaiting(t, r)
	mustWrite(t, p, audio(50), inter(80))
	took, _ := d.set("refuse")
	if len(took) != 1 || took[0] != describe([]*Unit{audio(50), inter(80)}) {
		t.Fatalf("Direct took %q, want the audio and the frame in one batch", took)
	}
	select {
	case b := <-batches:
		t.Fatalf("the goroutine was woken for %s, which Direct took", describe(b))
	case <-time.After(50 * time.Millisecond):
	}

	mustWrite(t, p, inter(120))
	if b := <-batches; describe(b) != describe([]*Unit{inter(120)}) {
		t.Fatalf("refused batch reached the goroutine as %s", describe(b))
	}
	waitWaiting(t, r)
	d.set("rest")
	mustWrite(t, p, inter(160))
	if b := <-batches; len(b) != 0 {
		t.Fatalf("after Direct left a rest, Next returned %s; want an empty batch", describe(b))
	}
	if took, _ := d.set("take"); len(took) != 1 || took[0] != describe([]*Unit{inter(160)}) {
		t.Fatalf("Direct took %q", took)
	}
	// Payload bytes: headers and keyframe 7, queued 8, Direct 8, refused 5,
	// Direct 5.
	if got, want := r.BytesOut(), uint64(33); got != want {
		t.Fatalf("BytesOut %d, want %d (units handed to Direct count too)", got, want)
	}
}

// A reader with Wake has no goroutine in NextUntil: it calls Wake where it
// would wake one, once, while its owner is not running; the owner takes
// batches with TryNext until it finds none, and the publisher hands it
// batches through Direct whenever the owner holds none.
func TestReaderWake(t *testing.T) {
	h := NewHub(HubParams{PublisherGrace: -1})
	defer h.Close()
	p := mustPublish(t, h, "live/w", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	d := &directRecorder{mode: "take"}
	wakes := make(chan struct{}, 16)
	r, err := h.Read(ctxT(t, 5*time.Second), "live/w", ReaderParams{CoalesceFrames: 1, Direct: d.direct,
		Wake: func() { wakes <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	noWake := func(when string) {
		t.Helper()
		select {
		case <-wakes:
			t.Fatalf("woken %s", when)
		default:
		}
	}
	// The owner is running from Read: the join's units wake nobody.
	noWake("while the owner sets up")
	b, ok, err := r.TryNext()
	if !ok || err != nil || describe(b) != describe([]*Unit{vhdr(0), key(0)}) {
		t.Fatalf("TryNext = %s, %v, %v", describe(b), ok, err)
	}
	// The owner still holds that batch: the next frame is queued, not
	// handed to Direct, and the owner, running, is not woken for it.
	mustWrite(t, p, inter(40))
	noWake("while the owner runs")
	if _, calls := d.set("take"); calls != 0 {
		t.Fatal("Direct called while the owner held a batch")
	}
	if b, ok, _ := r.TryNext(); !ok || describe(b) != describe([]*Unit{inter(40)}) {
		t.Fatalf("TryNext = %s, %v", describe(b), ok)
	}
	if b, ok, err := r.TryNext(); ok || err != nil || len(b) != 0 {
		t.Fatalf("TryNext with nothing queued = %s, %v, %v", describe(b), ok, err)
	}
	// Now idle: Direct takes the next frame and nobody is woken.
	mustWrite(t, p, inter(80))
	if took, _ := d.set("rest"); len(took) != 1 || took[0] != describe([]*Unit{inter(80)}) {
		t.Fatalf("Direct took %q", took)
	}
	noWake("for a batch Direct took")
	// A rest left by Direct wakes the owner for an empty batch; while it
	// runs, the next frame is queued for it and wakes nobody.
	mustWrite(t, p, inter(120))
	<-wakes
	if b, ok, _ := r.TryNext(); !ok || len(b) != 0 {
		t.Fatalf("TryNext after a rest = %s, %v; want an empty batch", describe(b), ok)
	}
	d.set("take")
	mustWrite(t, p, inter(160))
	noWake("twice")
	if b, ok, _ := r.TryNext(); !ok || describe(b) != describe([]*Unit{inter(160)}) {
		t.Fatalf("TryNext = %s, %v", describe(b), ok)
	}
	if _, ok, _ := r.TryNext(); ok {
		t.Fatal("TryNext returned a batch with nothing queued")
	}
	// The stream's end wakes the owner, and TryNext reports it.
	p.Close()
	<-wakes
	for {
		_, ok, err := r.TryNext()
		if err != nil {
			if err != ErrEnded {
				t.Fatalf("TryNext after the end: %v, want ErrEnded", err)
			}
			break
		}
		if !ok {
			t.Fatal("TryNext reported nothing, then no end, after the stream ended")
		}
	}
	// The owner saw the end: closing the reader wakes it no more.
	r.Close()
	noWake("after the end was reported")
}

// An owner with Wake that runs only when woken gets every unit, in order,
// while a publisher writes concurrently: no wake-up is lost between its
// last TryNext and the next unit, and its runs never overlap.
func TestReaderWakeLosesNothing(t *testing.T) {
	h := NewHub(HubParams{PublisherGrace: -1})
	defer h.Close()
	p := mustPublish(t, h, "live/w", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	var (
		r       *Reader
		ready   = make(chan struct{})
		got     []int64 // runs follow each other through the reader's lock
		holding atomic.Int32
		overlap atomic.Bool
		done    = make(chan error, 1)
	)
	run := func() {
		<-ready
		for i := 0; ; i++ {
			b, ok, err := r.TryNext()
			if err != nil {
				done <- err
				return
			}
			if !ok {
				return
			}
			if holding.Add(1) > 1 {
				overlap.Store(true)
			}
			for _, u := range b {
				if u.Kind == KindVideo && !u.Header {
					got = append(got, u.DTS)
				}
			}
			if i%7 == 0 {
				time.Sleep(50 * time.Microsecond) // a slow write now and then
			}
			holding.Add(-1)
		}
	}
	var err error
	r, err = h.Read(ctxT(t, 5*time.Second), "live/w", ReaderParams{MaxUnits: 4096, MaxBytes: 1 << 24,
		Wake: func() { go run() }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	close(ready)
	go run() // the owner's first run, as after a play starts
	const frames = 3000
	for i := 1; i <= frames; i++ {
		mustWrite(t, p, inter(int64(i)*40))
		if i%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	p.Close()
	select {
	case err := <-done:
		if err != ErrEnded {
			t.Fatalf("owner ended with %v, want ErrEnded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the owner never saw the end: a wake-up was lost")
	}
	if overlap.Load() {
		t.Error("two runs of the owner overlapped")
	}
	want := []int64{0}
	for i := 1; i <= frames; i++ {
		want = append(want, int64(i)*40)
	}
	if len(got) != len(want) {
		t.Fatalf("owner got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d has DTS %d, want %d", i, got[i], want[i])
		}
	}
}
