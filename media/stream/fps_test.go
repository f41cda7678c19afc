package stream

import "testing"

func TestStreamInfoFPSFromTimestamps(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/fps", PublisherInfo{Protocol: "test"})
	mustWrite(t, p, vhdr(0), ahdr(0))
	// 30 fps (33/34 ms steps) for two seconds, with audio interleaved
	// (audio must not count as frames).
	dts := int64(0)
	for i := 0; i < 61; i++ {
		u := inter(dts)
		if i%30 == 0 {
			u = key(dts)
		}
		mustWrite(t, p, u, audio(dts))
		dts += int64(33 + i%3/2) // 33, 33, 34: 100 ms per 3 frames
	}
	si, ok := h.Stream("live/fps")
	if !ok {
		t.Fatal("stream missing")
	}
	if si.FPS < 29.5 || si.FPS > 30.5 {
		t.Fatalf("fps = %v, want about 30", si.FPS)
	}
	p.Close()
	if si, _ := h.Stream("live/fps"); si.FPS != 0 {
		t.Fatalf("fps without a publisher = %v, want 0", si.FPS)
	}
}
