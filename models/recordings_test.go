package models_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

// TestClaimFinishedRecording: a file is claimed once per stream, however
// often it is reported; the same name in another stream is another file;
// pruning forgets old claims only.
func TestClaimFinishedRecording(t *testing.T) {
	for _, st := range modelstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s, ctx := st.Store, context.Background()
			a := liveFixture(t, s)
			b, err := s.CreateStream(ctx, "live", "other", a.OwnerID)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().UTC().Truncate(time.Second)
			claims := []struct {
				stream int64
				file   string
				want   bool
			}{
				{a.ID, "20261203-140000.ts", true},
				{a.ID, "20261203-140000.ts", false}, // a resent report
				{a.ID, "20261203-140002.ts", true},
				{b.ID, "20261203-140000.ts", true},
			}
			for i, c := range claims {
				got, err := s.ClaimFinishedRecording(ctx, c.stream, c.file, 7, 1000, t0)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Fatalf("claim %d (stream %d, %s) = %v, want %v", i, c.stream, c.file, got, c.want)
				}
			}
			if ok, err := s.ClaimFinishedRecording(ctx, a.ID, "20261203-150000.ts", 7, 1, t0.Add(time.Hour)); err != nil || !ok {
				t.Fatalf("later claim: %v %v", ok, err)
			}
			n, err := s.PruneFinishedRecordings(ctx, t0.Add(time.Minute))
			if err != nil || n != 3 {
				t.Fatalf("pruned %d, %v; want the 3 older claims", n, err)
			}
			if ok, _ := s.ClaimFinishedRecording(ctx, a.ID, "20261203-150000.ts", 7, 1, t0.Add(time.Hour)); ok {
				t.Fatal("a claim that was not pruned was claimed again")
			}
		})
	}
}

// TestClaimFinishedRecordingReplicas: two control-plane replicas on one
// Postgres, each taking the same concierge report many times at once,
// claim each file exactly once between them.
func TestClaimFinishedRecordingReplicas(t *testing.T) {
	dsn, ok := modelstest.Schema(t)
	if !ok {
		t.Skip("no Postgres")
	}
	ctx := context.Background()
	var replicas [2]*models.Store
	for i := range replicas {
		s, err := models.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		replicas[i] = s
	}
	st := liveFixture(t, replicas[0])
	files := []string{"20261203-140000.ts", "20261203-140002.ts", "20261203-140004.ts"}
	won := make(map[string]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for r := range 2 {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, f := range files {
					ok, err := replicas[r].ClaimFinishedRecording(ctx, st.ID, f, 1, 10, time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						won[f]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, f := range files {
		if won[f] != 1 {
			t.Errorf("%s claimed %d times across 2 replicas × 8 reporters, want once", f, won[f])
		}
	}
}
