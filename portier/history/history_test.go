package history

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestWindowAndForgetting(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	var snap Snapshot
	r := New(Params{Interval: 10 * time.Second, Window: time.Minute, Now: clk.now,
		Source: func(context.Context) (Snapshot, error) { return snap, nil }})
	ctx := context.Background()
	// Stream 1 is live for 2 minutes, stream 2 for the first 20 s only.
	for i := 0; i < 12; i++ {
		snap = Snapshot{Totals: Point{BitrateIn: int64(i), Viewers: i}, Streams: map[int64]Point{1: {BitrateIn: int64(100 + i), Viewers: i}}}
		if i < 2 {
			snap.Streams[2] = Point{BitrateIn: 7}
		}
		if err := r.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		clk.add(10 * time.Second)
	}
	tot := r.Totals()
	// The window is one minute back from now (after the last sample the
	// clock moved on 10 s): the samples of the last 50 s.
	if len(tot) != 6 || tot[0].BitrateIn != 6 || tot[5].BitrateIn != 11 || !tot[0].At.Before(tot[5].At) {
		t.Fatalf("totals %+v", tot)
	}
	if s := r.Stream(1); len(s) != 6 || s[5].BitrateIn != 111 || s[5].Viewers != 11 {
		t.Fatalf("stream 1 %+v", s)
	}
	if s := r.Stream(2); s != nil {
		t.Fatalf("stream 2, offline for over the window, still has %+v", s)
	}
	if s := r.Stream(3); s != nil {
		t.Fatalf("unknown stream %+v", s)
	}
}

func TestStartSamplesUntilClose(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	r := New(Params{Interval: 5 * time.Millisecond, Source: func(context.Context) (Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 2 {
			return Snapshot{}, errors.New("store down")
		}
		return Snapshot{Totals: Point{Viewers: calls}}, nil
	}})
	r.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for len(r.Totals()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	r.Close()
	if n := len(r.Totals()); n < 3 {
		t.Fatalf("%d points after sampling, want 3 or more (a failed sample is skipped, not fatal)", n)
	}
	New(Params{Source: func(context.Context) (Snapshot, error) { return Snapshot{}, nil }}).Close()
}
