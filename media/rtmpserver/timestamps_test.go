package rtmpserver

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/portier/portier/internal/testutil"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// Timestamps past 0xFFFFFF (extended timestamp field) and across the 2^32
// wrap flow from a publisher through the hub (as monotonic 64-bit DTS) to a
// player (truncated back to the 32-bit values the publisher sent).
func TestExtendedAndWrappingTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint32
	}{
		{"extended", 0xFFFFFF - 200},
		{"wrap", 0xFFFFFFFF - 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, Params{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			pc, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if err := pc.Publish(ctx, "ts"); err != nil {
				t.Fatal(err)
			}
			write := func(typ uint8, ts uint32, payload []byte) {
				t.Helper()
				if err := pc.WriteMessage(rtmp.Message{Type: typ, Timestamp: ts, Payload: payload}); err != nil {
					t.Fatal(err)
				}
			}
			write(rtmp.TypeVideo, tc.start, []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e})
			write(rtmp.TypeAudio, tc.start, []byte{0xaf, 0, 0x12, 0x10})
			testutil.Eventually(t, 5*time.Second, "publisher", func() bool { si, _ := env.hub.Stream("live/ts"); return si.BytesIn > 0 })

			hr, err := env.hub.Read(ctx, "live/ts", stream.ReaderParams{})
			if err != nil {
				t.Fatal(err)
			}
			defer hr.Close()
			player, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer player.Close()
			if err := player.Play(ctx, "ts"); err != nil {
				t.Fatal(err)
			}

			const frames = 20
			var sent []uint32
			payload := make([]byte, 5000) // several chunks: continuation headers repeat the extended timestamp
			for i := 0; i < frames; i++ {
				ts := tc.start + uint32(i)*40
				if i%5 == 0 {
					payload[0] = 0x17
				} else {
					payload[0] = 0x27
				}
				payload[1] = 1
				write(rtmp.TypeVideo, ts, append([]byte(nil), payload...))
				sent = append(sent, ts)
			}

			var got []uint32
			headers := 0
			for len(got) < frames {
				msg, err := player.ReadMessage()
				if err != nil {
					t.Fatalf("player after %d frames: %v", len(got), err)
				}
				if msg.Type != rtmp.TypeVideo {
					continue
				}
				if msg.Payload[1] == 0 {
					headers++
					if msg.Timestamp != tc.start {
						t.Errorf("header at %#x, want %#x", msg.Timestamp, tc.start)
					}
					continue
				}
				if len(msg.Payload) != len(payload) {
					t.Fatalf("payload %d bytes, want %d", len(msg.Payload), len(payload))
				}
				got = append(got, msg.Timestamp)
			}
			if headers != 1 {
				t.Errorf("player got %d video headers, want 1", headers)
			}
			for i := range sent {
				if got[i] != sent[i] {
					t.Fatalf("frame %d: player got ts %#x, publisher sent %#x", i, got[i], sent[i])
				}
			}

			var last int64
			n := 0
			for n < frames+2 {
				units, err := hr.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range units {
					if u.DTS < last {
						t.Fatalf("hub DTS went back: %d after %d", u.DTS, last)
					}
					last = u.DTS
					n++
				}
			}
			if want := int64(tc.start) + 40*(frames-1); last != want {
				t.Fatalf("hub DTS of the last frame = %d, want %d", last, want)
			}
		})
	}
}

// When the publisher leaves (no grace here), players get the end-of-stream
// statuses and their ReadMessage returns io.EOF.
func TestPlayerSeesStreamEnd(t *testing.T) {
	env := startServer(t, Params{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Publish(ctx, "end"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []rtmp.Message{
		{Type: rtmp.TypeVideo, Payload: []byte{0x17, 0, 0, 0, 0, 1}},
		{Type: rtmp.TypeVideo, Timestamp: 40, Payload: []byte{0x17, 1, 0, 0, 0, 7}},
	} {
		if err := pc.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "publisher", func() bool { si, _ := env.hub.Stream("live/end"); return si.BytesIn >= 12 })
	player, err := rtmp.Dial(ctx, env.url+"/live", rtmp.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	if err := player.Play(ctx, "end"); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 2 {
		msg, err := player.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if msg.Type == rtmp.TypeVideo {
			got++
		}
	}
	pc.Close()
	for {
		_, err := player.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("player ended with %v, want io.EOF", err)
		}
		break
	}
	testutil.Eventually(t, 5*time.Second, "close log line", func() bool {
		return strings.Contains(env.logs.String(), `kind=play app=live name=end reason="stream ended"`)
	})
}
