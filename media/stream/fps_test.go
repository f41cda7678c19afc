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

func TestStreamInfoGOPFromKeyframes(t *testing.T) {
	h := NewHub(HubParams{})
	defer h.Close()
	p := mustPublish(t, h, "live/gop", PublisherInfo{Protocol: "test", Encoder: "Lavf61.7.100\x00\n"})
	mustWrite(t, p, vhdr(0), ahdr(0))
	// 25 fps, a keyframe every 50 frames (ffmpeg -g 50 -r 25): 2 s GOPs.
	for i := 0; i < 120; i++ {
		dts := int64(i * 40)
		u := inter(dts)
		if i%50 == 0 {
			u = key(dts)
		}
		mustWrite(t, p, u, audio(dts))
		if i == 49 {
			if si, _ := h.Stream("live/gop"); si.GOPMillis != 0 || si.GOPFrames != 0 {
				t.Fatalf("before the second keyframe: gop = %d ms, %d frames; want 0, 0", si.GOPMillis, si.GOPFrames)
			}
		}
	}
	si, _ := h.Stream("live/gop")
	if si.GOPMillis != 2000 || si.GOPFrames != 50 {
		t.Fatalf("gop = %d ms, %d frames; want 2000 ms, 50 frames", si.GOPMillis, si.GOPFrames)
	}
	if si.Publisher.Encoder != "Lavf61.7.100" {
		t.Fatalf("encoder = %q, want the control characters dropped", si.Publisher.Encoder)
	}
	p.SetEncoder("obs-output module (libobs version 30.1.2)")
	p.SetEncoder("\x01") // nothing left after cleaning: no change
	if si, _ := h.Stream("live/gop"); si.Publisher.Encoder != "obs-output module (libobs version 30.1.2)" {
		t.Fatalf("encoder after SetEncoder = %q", si.Publisher.Encoder)
	}
	// A reconnecting publisher starts its own measurement.
	p.Close()
	p2 := mustPublish(t, h, "live/gop", PublisherInfo{Protocol: "test"})
	mustWrite(t, p2, vhdr(0), key(10_000))
	if si, _ := h.Stream("live/gop"); si.GOPMillis != 0 || si.Publisher.Encoder != "" {
		t.Fatalf("new publisher: gop = %d ms, encoder %q; want 0 and empty", si.GOPMillis, si.Publisher.Encoder)
	}
}

func TestCleanEncoderBounds(t *testing.T) {
	long := ""
	for len(long) < 300 {
		long += "ü"
	}
	got := CleanEncoder(" \tFMLE/3.0 (compatible; Lavf61.7.100)\r\n")
	if got != "FMLE/3.0 (compatible; Lavf61.7.100)" {
		t.Fatalf("CleanEncoder = %q", got)
	}
	if c := CleanEncoder(long); len(c) > 128 || len(c) < 126 || c[len(c)-2:] != "ü" {
		t.Fatalf("CleanEncoder(long) = %d bytes %q, want at most 128 cut at a rune", len(c), c)
	}
}
