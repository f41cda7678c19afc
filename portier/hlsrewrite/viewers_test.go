package hlsrewrite

import (
	"testing"
	"time"
)

// 30 viewers reloading a 2 s playlist for 10 s are 30 viewers; a stream
// nobody asked for in 10 s is gone; a 6 s target counts each reload for 6 s.
func TestViewerCounter(t *testing.T) {
	var c viewerCounter
	t0 := time.Unix(1_000_000, 0)
	for s := 0; s < 10; s++ {
		for v := 0; v < 30; v++ {
			if (s+v)%2 == 0 { // each viewer every 2 s
				c.add(1, "live", "hot", 2*time.Second, t0.Add(time.Duration(s)*time.Second))
			}
		}
		if s%6 == 0 {
			c.add(2, "live", "slow", 6*time.Second, t0.Add(time.Duration(s)*time.Second))
		}
	}
	c.add(3, "live", "old", 2*time.Second, t0.Add(-time.Minute))
	got := c.snapshot(t0.Add(9 * time.Second))
	if len(got) != 2 || got[0].Name != "hot" || got[0].Viewers != 30 || got[1].Name != "slow" || got[1].Viewers != 1 {
		t.Fatalf("viewers %+v, want hot 30 and slow 1 (old gone)", got)
	}
	if got := c.snapshot(t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("viewers a minute after the last request: %+v", got)
	}
}

func TestTargetDuration(t *testing.T) {
	for body, want := range map[string]time.Duration{
		"#EXTM3U\n#EXT-X-TARGETDURATION:2\n":     2 * time.Second,
		"#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n": 6 * time.Second,
		"#EXTM3U\n":                              0,
		"#EXT-X-TARGETDURATION:x\n":              0,
	} {
		if got := targetDuration([]byte(body)); got != want {
			t.Errorf("targetDuration(%q) = %v, want %v", body, got, want)
		}
	}
}
