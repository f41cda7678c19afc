package stream

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// chunkLike stands in for a wire encoder (RTMP chunking at 4096 bytes): a
// header per chunk and a copy of the payload, allocated per call.
func chunkLike(u *Unit) []byte {
	const size = 4096
	out := make([]byte, 0, len(u.Payload)+12+len(u.Payload)/size+1)
	var hdr [12]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(u.DTS))
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(u.Payload)))
	hdr[8] = byte(u.Kind)
	out = append(out, hdr[:]...)
	for p := u.Payload; len(p) > 0; {
		n := min(len(p), size)
		out = append(out, p[:n]...)
		p = p[n:]
		if len(p) > 0 {
			out = append(out, 0xc4)
		}
	}
	return out
}

// BenchmarkFanout measures delivering one 6 KB unit to 1000 readers that
// each encode it, with the shared per-unit encoding cache and without it.
// ns/op is per unit delivered to all readers.
func BenchmarkFanout(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := "shared-encoding"
		if !shared {
			name = "per-reader-encoding"
		}
		b.Run(name, func(b *testing.B) { benchFanout(b, 1000, shared) })
	}
}

func benchFanout(b *testing.B, readers int, shared bool) {
	h := NewHub(HubParams{})
	defer h.Close()
	p, err := h.Publish("live/bench", PublisherInfo{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := EncKey{Format: "bench-chunks", A: 4096, B: 1}
	var consumed, sink atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		r, err := h.Read(ctx, "live/bench", ReaderParams{MaxUnits: 4096, MaxSkips: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				batch, err := r.Next(ctx)
				if err != nil {
					return
				}
				n := 0
				for _, u := range batch {
					var out []byte
					if shared {
						out = u.Encoded(key, func() []byte { return chunkLike(u) })
					} else {
						out = chunkLike(u)
					}
					n += len(out)
				}
				sink.Add(int64(n))
				consumed.Add(int64(len(batch)))
			}
		}()
	}
	payload := make([]byte, 6000)
	b.SetBytes(int64(len(payload) * readers))
	b.ReportAllocs()
	b.ResetTimer()
	written := 0
	for written < b.N {
		// One GOP at a time, then wait for every reader to take it, so
		// that nothing is skipped and both variants do the same work.
		for i := 0; i < 25 && written < b.N; i++ {
			_ = p.Write(&Unit{Kind: KindVideo, DTS: int64(written * 40), Key: i == 0, Payload: payload})
			written++
		}
		for consumed.Load() < int64(written*readers) {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if si, _ := h.Stream("live/bench"); si.Skips != 0 {
		b.Fatalf("readers skipped %d times", si.Skips)
	}
}
