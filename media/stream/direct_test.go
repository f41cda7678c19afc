package stream

import (
	"sync"
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
// would wake one, its owner takes batches with TryNext, and the publisher
// hands it batches through Direct whenever the owner holds none.
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
	<-wakes // the join queued the headers and the GOP
	if !r.Pending() {
		t.Fatal("Pending is false with the join's units queued")
	}
	b, ok, err := r.TryNext()
	if !ok || err != nil || describe(b) != describe([]*Unit{vhdr(0), key(0)}) {
		t.Fatalf("TryNext = %s, %v, %v", describe(b), ok, err)
	}
	// The owner still holds that batch: the next frame is queued, not
	// handed to Direct, and wakes the owner.
	mustWrite(t, p, inter(40))
	<-wakes
	if _, calls := d.set("take"); calls != 0 {
		t.Fatal("Direct called while the owner held a batch")
	}
	if b, ok, _ := r.TryNext(); !ok || describe(b) != describe([]*Unit{inter(40)}) {
		t.Fatalf("TryNext = %s, %v", describe(b), ok)
	}
	if b, ok, err := r.TryNext(); ok || err != nil || len(b) != 0 {
		t.Fatalf("TryNext with nothing queued = %s, %v, %v", describe(b), ok, err)
	}
	if r.Pending() {
		t.Fatal("Pending is true with nothing queued")
	}
	// Now idle: Direct takes the next frame and nobody is woken.
	mustWrite(t, p, inter(80))
	if took, _ := d.set("rest"); len(took) != 1 || took[0] != describe([]*Unit{inter(80)}) {
		t.Fatalf("Direct took %q", took)
	}
	select {
	case <-wakes:
		t.Fatal("woken for a batch Direct took")
	default:
	}
	// A rest left by Direct wakes the owner for an empty batch.
	mustWrite(t, p, inter(120))
	<-wakes
	if b, ok, _ := r.TryNext(); !ok || len(b) != 0 {
		t.Fatalf("TryNext after a rest = %s, %v; want an empty batch", describe(b), ok)
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
}
