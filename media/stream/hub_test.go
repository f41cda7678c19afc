package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func meta(dts int64) *Unit {
	return &Unit{Kind: KindData, DTS: dts, Header: true, Payload: []byte("meta")}
}
func vhdr(dts int64) *Unit {
	return &Unit{Kind: KindVideo, DTS: dts, Header: true, Payload: []byte{0x17, 0}}
}
func ahdr(dts int64) *Unit {
	return &Unit{Kind: KindAudio, DTS: dts, Header: true, Payload: []byte{0xaf, 0}}
}
func key(dts int64) *Unit {
	return &Unit{Kind: KindVideo, DTS: dts, Key: true, Payload: []byte{0x17, 1, 0, 0, 0}}
}
func inter(dts int64) *Unit {
	return &Unit{Kind: KindVideo, DTS: dts, Payload: []byte{0x27, 1, 0, 0, 0}}
}
func audio(dts int64) *Unit { return &Unit{Kind: KindAudio, DTS: dts, Payload: []byte{0xaf, 1, 2}} }

func mustPublish(t *testing.T, h *Hub, path string, info PublisherInfo) *Publisher {
	t.Helper()
	p, err := h.Publish(path, info)
	if err != nil {
		t.Fatalf("publish %s: %v", path, err)
	}
	return p
}

func mustWrite(t *testing.T, p *Publisher, units ...*Unit) {
	t.Helper()
	for _, u := range units {
		if err := p.Write(u); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// readN collects exactly n units from r or fails.
func readN(t *testing.T, r *Reader, n int) []*Unit {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	var got []*Unit
	for len(got) < n {
		b, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("next after %d/%d units: %v", len(got), n, err)
		}
		got = append(got, b...)
	}
	if len(got) != n {
		t.Fatalf("got %d units, want %d", len(got), n)
	}
	return got
}

func describe(us []*Unit) string {
	s := ""
	for _, u := range us {
		tag := u.Kind.String()
		switch {
		case u.Header:
			tag += "H"
		case u.Key:
			tag += "K"
		}
		s += fmt.Sprintf("%s@%d ", tag, u.DTS)
	}
	return s
}

func TestFanoutAllReadersGetEverythingInOrder(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{Protocol: "test"})
	mustWrite(t, p, meta(0), vhdr(0), ahdr(0))

	const readers, units = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		r, err := h.Read(context.Background(), "live/a", ReaderParams{MaxUnits: 1024})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			next := int64(0)
			for next < units {
				b, err := r.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				for _, u := range b {
					if u.Header {
						continue
					}
					if u.DTS != next {
						errs <- fmt.Errorf("got dts %d, want %d", u.DTS, next)
						return
					}
					next++
				}
			}
		}()
	}
	for i := int64(0); i < units; i++ {
		if i%25 == 0 {
			mustWrite(t, p, key(i))
		} else {
			mustWrite(t, p, inter(i))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	si, _ := h.Stream("live/a")
	if si.Readers != 0 || si.BytesOut == 0 || si.BytesIn == 0 {
		t.Errorf("stats %+v", si)
	}
}

func TestNewReaderStartsWithHeadersAndGOP(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, meta(0), vhdr(0), ahdr(0), inter(0), key(40), audio(50), inter(80), key(120), audio(130), inter(160))

	r, err := h.Read(context.Background(), "live/a", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := describe(readN(t, r, 6))
	want := "dataH@120 videoH@120 audioH@120 videoK@120 audio@130 video@160 "
	if got != want {
		t.Fatalf("start:\n got %s\nwant %s", got, want)
	}
	mustWrite(t, p, audio(170))
	if got := describe(readN(t, r, 1)); got != "audio@170 " {
		t.Fatalf("live: %s", got)
	}
}

func TestReaderBeforeFirstKeyframeWaitsForIt(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, vhdr(0), ahdr(0), inter(0))
	r, err := h.Read(context.Background(), "live/a", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustWrite(t, p, audio(10), inter(40), key(80), audio(90))
	if got, want := describe(readN(t, r, 4)), "videoH@80 audioH@80 videoK@80 audio@90 "; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestAudioOnlyStreamStartsFromWindow(t *testing.T) {
	h := NewHub(HubParams{AudioWindow: 3})
	defer h.Close()
	p := mustPublish(t, h, "live/radio", PublisherInfo{})
	mustWrite(t, p, ahdr(0))
	for i := int64(1); i <= 10; i++ {
		mustWrite(t, p, audio(i*23))
	}
	r, err := h.Read(context.Background(), "live/radio", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := describe(readN(t, r, 4)), "audioH@184 audio@184 audio@207 audio@230 "; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestSlowReaderSkipsToKeyframeThenIsDropped(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, vhdr(0), ahdr(0), key(0))
	r, err := h.Read(context.Background(), "live/a", ReaderParams{MaxUnits: 8, MaxSkips: 2, SkipWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The initial vH aH K do not count against the bound: 8 more fit, the
	// 9th overflows.
	dts := int64(0)
	for i := 0; i < 9; i++ {
		dts += 40
		mustWrite(t, p, inter(dts))
	}
	mustWrite(t, p, audio(dts+1)) // dropped while waiting for a keyframe
	mustWrite(t, p, key(dts+40), inter(dts+80))
	got := describe(readN(t, r, 4))
	want := fmt.Sprintf("videoH@%d audioH@%d videoK@%d video@%d ", dts+40, dts+40, dts+40, dts+80)
	if got != want {
		t.Fatalf("after skip:\n got %s\nwant %s", got, want)
	}
	if r.Skips() != 1 {
		t.Fatalf("skips = %d, want 1", r.Skips())
	}
	// Never read again: two more overflows exceed MaxSkips=2 -> dropped.
	dts += 80
	for i := 0; i < 40; i++ {
		dts += 40
		if i%5 == 0 {
			mustWrite(t, p, key(dts))
		} else {
			mustWrite(t, p, inter(dts))
		}
	}
	_, err = r.Next(ctxT(t, 5*time.Second))
	if !errors.Is(err, ErrDropped) {
		t.Fatalf("next = %v, want ErrDropped", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		si, _ := h.Stream("live/a")
		if si.Drops == 1 && si.Readers == 0 && si.Skips == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", si)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if tot := h.Totals(); tot.Drops != 1 || tot.Skips != 3 {
		t.Fatalf("totals %+v", tot)
	}
}

// A reader that never reads must not slow the publisher down.
func TestPublisherNeverBlocks(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	payload := make([]byte, 4000)
	run := func(path string, stuck int) (time.Duration, uint64) {
		p := mustPublish(t, h, path, PublisherInfo{})
		defer p.Close()
		for i := 0; i < stuck; i++ {
			r, err := h.Read(context.Background(), path, ReaderParams{MaxSkips: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
		}
		start := time.Now()
		var worst time.Duration
		for i := 0; i < 20000; i++ {
			u := &Unit{Kind: KindVideo, DTS: int64(i), Key: i%50 == 0, Payload: payload}
			t0 := time.Now()
			if err := p.Write(u); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); d > worst {
				worst = d
			}
		}
		total := time.Since(start)
		t.Logf("%d stuck readers: 20000 writes in %v (%.2f µs/write, worst %v)", stuck, total, float64(total.Microseconds())/20000, worst)
		si, _ := h.Stream(path)
		return total, si.Skips
	}
	base, _ := run("live/free", 0)
	stuck, skips := run("live/stuck", 10)
	// Ten never-read queues cost ten queue appends per write, nothing more:
	// bounded well below any blocking behaviour (a blocked write would hang).
	if stuck > 20*base+2*time.Second {
		t.Fatalf("writes with stuck readers took %v vs %v without", stuck, base)
	}
	if skips < 10*(20000/(DefaultReaderMaxUnits+50)) { // one skip per fill-up plus the wait for a keyframe
		t.Fatalf("stuck readers skipped only %d times", skips)
	}
}

func TestSecondPublisherRefusedAndTakeover(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p1 := mustPublish(t, h, "live/a", PublisherInfo{RemoteAddr: "1.1.1.1:1"})
	mustWrite(t, p1, vhdr(0), ahdr(0), key(1000), inter(1040))
	if _, err := h.Publish("live/a", PublisherInfo{}); !errors.Is(err, ErrAlreadyPublishing) {
		t.Fatalf("second publish: %v", err)
	}
	r, err := h.Read(context.Background(), "live/a", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 4)

	p2 := mustPublish(t, h, "live/a", PublisherInfo{RemoteAddr: "2.2.2.2:2", Takeover: true})
	select {
	case <-p1.Done():
	case <-time.After(time.Second):
		t.Fatal("old publisher not closed")
	}
	if err := p1.Write(inter(1080)); !errors.Is(err, ErrClosed) {
		t.Fatalf("old publisher write: %v", err)
	}
	newV := &Unit{Kind: KindVideo, DTS: 0, Header: true, Payload: []byte{0x17, 0, 9}}
	mustWrite(t, p2, newV, ahdr(0), inter(0), key(40), inter(80))
	got := readN(t, r, 4)
	if d := describe(got); d != "videoH@1081 audioH@1081 videoK@1081 video@1121 " {
		t.Fatalf("after takeover: %s", d)
	}
	if got[0].Payload[2] != 9 {
		t.Fatal("reader did not get the new publisher's header")
	}
	si, _ := h.Stream("live/a")
	if si.Publisher.RemoteAddr != "2.2.2.2:2" || !si.Live {
		t.Fatalf("stats %+v", si)
	}
	p1.Close() // must not detach the new publisher
	if si, _ := h.Stream("live/a"); !si.Live {
		t.Fatal("closing the old publisher ended the new one")
	}
}

func TestGraceReconnectAndEnd(t *testing.T) {
	h := NewHub(HubParams{PublisherGrace: 300 * time.Millisecond})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	r, err := h.Read(context.Background(), "live/a", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readN(t, r, 2)
	p.Close()

	p2 := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p2, vhdr(0), key(0), inter(40))
	if d := describe(readN(t, r, 3)); d != "videoH@1 videoK@1 video@41 " {
		t.Fatalf("after reconnect: %s", d)
	}
	p2.Close()
	start := time.Now()
	_, err = r.Next(ctxT(t, 5*time.Second))
	if !errors.Is(err, ErrEnded) {
		t.Fatalf("next = %v, want ErrEnded", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("ended after %v, before the grace time", el)
	}
	if _, ok := h.Stream("live/a"); ok {
		t.Fatal("ended stream still registered")
	}
}

func TestReadUnknownAndWait(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	if _, err := h.Read(context.Background(), "live/none", ReaderParams{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown: %v", err)
	}
	if _, err := h.Read(context.Background(), "nopath", ReaderParams{}); !errors.Is(err, ErrBadPath) {
		t.Fatalf("bad path: %v", err)
	}
	start := time.Now()
	if _, err := h.Read(context.Background(), "live/none", ReaderParams{WaitTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown with wait: %v", err)
	}
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("did not wait")
	}
	go func() {
		time.Sleep(50 * time.Millisecond) // a publisher arriving later, on purpose
		p, err := h.Publish("live/late", PublisherInfo{})
		if err == nil {
			_ = p.Write(key(0))
		}
	}()
	r, err := h.Read(context.Background(), "live/late", ReaderParams{WaitTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d := describe(readN(t, r, 1)); d != "videoK@0 " {
		t.Fatal(d)
	}
	if len(h.Streams()) != 1 {
		t.Fatalf("streams %+v", h.Streams())
	}
}

type testSource struct {
	h      *Hub
	path   string
	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

func (s *testSource) run() {
	defer close(s.done)
	p, err := s.h.Publish(s.path, PublisherInfo{Protocol: "on-demand"})
	if err != nil {
		return
	}
	defer p.Close()
	_ = p.Write(vhdr(0))
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := int64(0); ; i++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			u := inter(i * 40)
			if i%10 == 0 {
				u = key(i * 40)
			}
			if p.Write(u) != nil {
				return
			}
		}
	}
}

func (s *testSource) Close() error {
	s.closed.Store(true)
	close(s.stop)
	<-s.done
	return nil
}

func TestOnDemandSingleSourceAndIdleClose(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var sources []*testSource
	var h *Hub
	h = NewHub(HubParams{
		IdleTimeout: 150 * time.Millisecond,
		OnDemand: func(path string) (Source, error) {
			calls.Add(1)
			s := &testSource{h: h, path: path, stop: make(chan struct{}), done: make(chan struct{})}
			mu.Lock()
			sources = append(sources, s)
			mu.Unlock()
			go s.run()
			return s, nil
		},
	})
	defer h.Close()

	var wg sync.WaitGroup
	readers := make([]*Reader, 10)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.Read(context.Background(), "live/pulled", ReaderParams{})
			if err != nil {
				t.Error(err)
				return
			}
			readers[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("on-demand called %d times, want 1", n)
	}
	for _, r := range readers {
		readN(t, r, 3) // header + keyframe + something
	}
	for _, r := range readers[1:] {
		r.Close()
	}
	time.Sleep(300 * time.Millisecond) // longer than IdleTimeout: the source must survive one reader
	if sources[0].closed.Load() {
		t.Fatal("source closed while a reader remains")
	}
	readers[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for !sources[0].closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("idle source not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The next reader starts a fresh source.
	for {
		if _, ok := h.Stream("live/pulled"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stream not removed after its source closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, err := h.Read(context.Background(), "live/pulled", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	readN(t, r, 2)
	r.Close()
	if n := calls.Load(); n != 2 {
		t.Fatalf("on-demand called %d times, want 2", n)
	}
}

func TestOnDemandErrorReported(t *testing.T) {
	h := NewHub(HubParams{OnDemand: func(string) (Source, error) { return nil, errors.New("no origin") }})
	defer h.Close()
	_, err := h.Read(context.Background(), "live/x", ReaderParams{})
	if err == nil || err.Error() != `read "live/x": start on-demand source: no origin` {
		t.Fatalf("err = %v", err)
	}
	if len(h.Streams()) != 0 {
		t.Fatal("failed stream kept")
	}
}

func TestHubCloseEndsEverything(t *testing.T) {
	h := NewHub(HubParams{})
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, key(0))
	r, err := h.Read(context.Background(), "live/a", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	readN(t, r, 1)
	h.Close()
	if _, err := r.Next(ctxT(t, time.Second)); !errors.Is(err, ErrEnded) {
		t.Fatalf("reader: %v", err)
	}
	if err := p.Write(inter(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("publisher: %v", err)
	}
	if _, err := h.Publish("live/b", PublisherInfo{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
}

func TestEncodedBuildsOncePerKey(t *testing.T) {
	u := &Unit{Kind: KindVideo, Payload: []byte("x")}
	var builds atomic.Int32
	var wg sync.WaitGroup
	k1, k2 := EncKey{Format: "a", A: 1}, EncKey{Format: "a", A: 2}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := u.Encoded(k1, func() []byte { builds.Add(1); return []byte("one") })
			c := u.Encoded(k2, func() []byte { builds.Add(1); return []byte("two") })
			if string(b) != "one" || string(c) != "two" {
				t.Errorf("got %q %q", b, c)
			}
		}()
	}
	wg.Wait()
	before := builds.Load()
	u.Encoded(k1, func() []byte { t.Fatal("rebuilt a cached encoding"); return nil })
	if before < 2 {
		t.Fatalf("builds = %d", before)
	}
}

// A GOP longer than the reader's queue is delivered whole at join without
// counting as falling behind.
func TestLongGOPDoesNotCountAsLag(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	for i := int64(1); i < 100; i++ {
		mustWrite(t, p, inter(i))
	}
	r, err := h.Read(context.Background(), "live/a", ReaderParams{MaxUnits: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustWrite(t, p, inter(100))
	got := readN(t, r, 102)
	if got[101].DTS != 100 || r.Skips() != 0 {
		t.Fatalf("last dts %d, skips %d", got[101].DTS, r.Skips())
	}
}

// Readers joining while the publisher writes start at a keyframe with the
// headers and then see every later unit exactly once, in order.
func TestJoinDuringWritesHasNoGapsOrDuplicates(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/a", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := inter(i)
			if i%10 == 0 {
				u = key(i)
			}
			if p.Write(u) != nil {
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let readers keep up
			}
		}
	}()
	defer func() { close(stop); <-writerDone }()
	ctx := ctxT(t, 10*time.Second)
	for j := 0; j < 50; j++ {
		r, err := h.Read(ctx, "live/a", ReaderParams{MaxUnits: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var got []*Unit
		for len(got) < 40 {
			b, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		r.Close()
		if r.Skips() != 0 {
			t.Fatalf("reader %d skipped", j)
		}
		if !got[0].Header || got[0].Kind != KindVideo || !got[1].Key {
			t.Fatalf("reader %d starts with %s", j, describe(got[:2]))
		}
		for i := 2; i < len(got); i++ {
			if got[i].DTS != got[i-1].DTS+1 {
				t.Fatalf("reader %d: dts %d after %d", j, got[i].DTS, got[i-1].DTS)
			}
		}
	}
}

// Internal readers count in Readers and, apart, in InternalReaders.
func TestInternalReadersCounted(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/in", PublisherInfo{})
	mustWrite(t, p, vhdr(0), key(0))
	viewer, err := h.Read(ctxT(t, 5*time.Second), "live/in", ReaderParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	task, err := h.Read(ctxT(t, 5*time.Second), "live/in", ReaderParams{Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	si, _ := h.Stream("live/in")
	if si.Readers != 2 || si.InternalReaders != 1 {
		t.Fatalf("readers %d, internal %d; want 2 and 1", si.Readers, si.InternalReaders)
	}
	task.Close()
	if si, _ = h.Stream("live/in"); si.Readers != 1 || si.InternalReaders != 0 {
		t.Fatalf("after the internal reader left: readers %d, internal %d", si.Readers, si.InternalReaders)
	}
}
