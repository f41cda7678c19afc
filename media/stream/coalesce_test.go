package stream

import (
	"errors"
	"testing"
	"time"
)

// pendingWake reports whether a wake-up is waiting in r's signal channel,
// and consumes it.
func pendingWake(r *Reader) bool {
	select {
	case <-r.signal:
		return true
	default:
		return false
	}
}

func TestReaderCoalesceWakesOncePerVideoFrame(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/co", PublisherInfo{})
	mustWrite(t, p, vhdr(0), ahdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/co", ReaderParams{CoalesceFrames: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 3) // headers and the keyframe
	pendingWake(r)

	mustWrite(t, p, audio(10), audio(30))
	if pendingWake(r) {
		t.Fatal("audio woke a coalescing reader of a stream with video")
	}
	mustWrite(t, p, inter(40))
	if !pendingWake(r) {
		t.Fatal("a video frame did not wake the reader")
	}
	if got := describe(readN(t, r, 3)); got != describe([]*Unit{audio(10), audio(30), inter(40)}) {
		t.Fatalf("batch = %s, want the held-back audio then the frame", got)
	}

	// Audio alone (video stalled) still goes out once it spans CoalesceSpan.
	pendingWake(r)
	mustWrite(t, p, audio(50), audio(100))
	if pendingWake(r) {
		t.Fatal("woken before the held-back audio spans CoalesceSpan")
	}
	mustWrite(t, p, audio(50+CoalesceSpan))
	if !pendingWake(r) {
		t.Fatalf("audio spanning %d ms did not wake the reader", CoalesceSpan)
	}
	readN(t, r, 3)
}

func TestReaderCoalesceBlockedNextReturnsOnVideo(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/co", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/co", ReaderParams{CoalesceFrames: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	got := make(chan []*Unit, 1)
	go func() {
		b, err := r.Next(ctxT(t, 5*time.Second))
		if err != nil {
			t.Error(err)
		}
		got <- append([]*Unit(nil), b...)
	}()
	mustWrite(t, p, audio(10), inter(40))
	select {
	case b := <-got:
		// The batch may hold the audio alone only if Next looked at the
		// queue between the two writes; the frame must follow.
		if len(b) == 1 {
			b = append(b, readN(t, r, 1)...)
		}
		if describe(b) != describe([]*Unit{audio(10), inter(40)}) {
			t.Fatalf("got %s", describe(b))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting in Next was not woken by a video frame")
	}
}

func TestReaderWithoutCoalesceOrVideoWakesOnEveryFirstUnit(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	// No CoalesceFrames: audio wakes.
	p := mustPublish(t, h, "live/av", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/av", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	pendingWake(r)
	mustWrite(t, p, audio(10))
	if !pendingWake(r) {
		t.Fatal("audio did not wake a reader without CoalesceFrames")
	}
	readN(t, r, 1)

	// CoalesceFrames on an audio-only stream: audio wakes.
	pa := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, pa, ahdr(0), audio(0))
	ra, err := h.Read(ctxT(t, 5*time.Second), "live/a", ReaderParams{CoalesceFrames: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	for n := 0; n < 2; {
		b, err := ra.Next(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n += len(b)
	}
	pendingWake(ra)
	mustWrite(t, pa, audio(20))
	if !pendingWake(ra) {
		t.Fatal("audio did not wake a coalescing reader of an audio-only stream")
	}
}

func TestReaderNextUntilStops(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/s", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/s", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := r.NextUntil(ctxT(t, 10*time.Second), stop)
		done <- err
	}()
	close(stop)
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("NextUntil after stop = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NextUntil did not return when stop closed")
	}
	// Queued units still come first.
	mustWrite(t, p, inter(40))
	b, err := r.NextUntil(ctxT(t, 5*time.Second), stop)
	if err != nil || len(b) != 1 {
		t.Fatalf("NextUntil with a queued unit = %d units, %v", len(b), err)
	}
}

func TestReaderCoalesceTwoFrames(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/co2", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/co2", ReaderParams{CoalesceFrames: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	pendingWake(r)
	mustWrite(t, p, audio(10), inter(40), audio(50))
	if pendingWake(r) {
		t.Fatal("woken after one of two frames")
	}
	mustWrite(t, p, inter(80))
	if !pendingWake(r) {
		t.Fatal("not woken after the second frame")
	}
	if got := describe(readN(t, r, 4)); got != describe([]*Unit{audio(10), inter(40), audio(50), inter(80)}) {
		t.Fatalf("batch = %s", got)
	}
	// The count starts again once the reader has looked: one frame is
	// not enough.
	pendingWake(r)
	mustWrite(t, p, inter(120))
	if pendingWake(r) {
		t.Fatal("woken by the first frame after a batch")
	}
}

// A publisher that stalls after an odd frame does not strand it: a waiting
// reader gets it within CoalesceWait, and once idle the next unit wakes it
// at once.
func TestReaderCoalesceReleasesStalledFrame(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/stall", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(ctxT(t, 5*time.Second), "live/stall", ReaderParams{CoalesceFrames: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	got := make(chan time.Duration, 2)
	go func() {
		for i := 0; i < 2; i++ {
			start := time.Now()
			if _, err := r.Next(ctxT(t, 5*time.Second)); err != nil {
				t.Error(err)
				return
			}
			got <- time.Since(start)
		}
	}()
	time.Sleep(10 * time.Millisecond) // let Next wait
	mustWrite(t, p, inter(40))        // one of two frames, then silence
	select {
	case d := <-got:
		if d < CoalesceWait/2 {
			t.Fatalf("the held frame came after %v: not held at all", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a frame held for coalescing was never released after the publisher stalled")
	}
	// The reader is now waiting; after a quiet CoalesceWait it is idle and
	// a single frame wakes it at once.
	time.Sleep(CoalesceWait + 50*time.Millisecond)
	start := time.Now()
	mustWrite(t, p, inter(80))
	select {
	case <-got:
		if d := time.Since(start); d > CoalesceWait/2 {
			t.Fatalf("an idle reader took %v to wake for a frame", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("an idle reader was not woken by a frame")
	}
}
