package edge

import (
	"testing"

	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

func video(ts uint32, key bool) rtmp.Message {
	b := byte(0x27)
	if key {
		b = 0x17
	}
	return rtmp.Message{Type: rtmp.TypeVideo, Timestamp: ts, Payload: []byte{b, 1, 0, 0, 0, 0xAA}}
}

func videoHeader(ts uint32) rtmp.Message {
	return rtmp.Message{Type: rtmp.TypeVideo, Timestamp: ts, Payload: []byte{0x17, 0, 0, 0, 0, 1}}
}

func audio(ts uint32) rtmp.Message {
	return rtmp.Message{Type: rtmp.TypeAudio, Timestamp: ts, Payload: []byte{0xAF, 1, 0x21}}
}

func TestUnitFromMessage(t *testing.T) {
	tests := []struct {
		name              string
		msg               rtmp.Message
		kind              stream.Kind
		key, header, none bool
	}{
		{"avc keyframe", video(0, true), stream.KindVideo, true, false, false},
		{"avc inter", video(0, false), stream.KindVideo, false, false, false},
		{"avc sequence header", videoHeader(0), stream.KindVideo, false, true, false},
		{"aac raw", audio(0), stream.KindAudio, false, false, false},
		{"aac config", rtmp.Message{Type: rtmp.TypeAudio, Payload: []byte{0xAF, 0, 0x12, 0x10}}, stream.KindAudio, false, true, false},
		{"mp3 frame", rtmp.Message{Type: rtmp.TypeAudio, Payload: []byte{0x2F, 0xFF}}, stream.KindAudio, false, false, false},
		{"metadata", rtmp.Message{Type: rtmp.TypeDataAMF0, Payload: []byte("\x02\x00\x0aonMetaData\x08")}, stream.KindData, false, true, false},
		{"cue point", rtmp.Message{Type: rtmp.TypeDataAMF0, Payload: []byte{2, 0, 1, 'x'}}, stream.KindData, false, false, false},
		{"empty", rtmp.Message{Type: rtmp.TypeVideo}, 0, false, false, true},
		{"command", rtmp.Message{Type: rtmp.TypeCommandAMF0, Payload: []byte{2}}, 0, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := unitFromMessage(tc.msg)
			if tc.none {
				if u != nil {
					t.Fatalf("got %+v, want nil", u)
				}
				return
			}
			if u.Kind != tc.kind || u.Key != tc.key || u.Header != tc.header {
				t.Fatalf("got kind %v key %v header %v", u.Kind, u.Key, u.Header)
			}
		})
	}
}

// TestRebaseAcrossSwitch feeds one session, switches to an upstream with an
// unrelated clock and checks: pass-through first, headers forwarded, frames
// before the first keyframe dropped, and the formula
// out = lastOut + interval + (up - firstUpAfterSwitch).
func TestRebaseAcrossSwitch(t *testing.T) {
	var r rebaser
	r.newSession()
	var outs []*stream.Unit
	feed := func(m rtmp.Message) *stream.Unit {
		u := r.next(m)
		if u != nil {
			outs = append(outs, u)
		}
		return u
	}
	feed(videoHeader(1000))
	for i := range 10 {
		ts := uint32(1000 + 40*i)
		if u := feed(video(ts, i == 0)); u.DTS != int64(ts) {
			t.Fatalf("first session must pass through: got %d want %d", u.DTS, ts)
		}
		feed(audio(ts + 5))
	}
	lastOut := int64(1000 + 40*9 + 5) // the last audio frame

	r.newSession()
	if u := feed(videoHeader(500_000)); u == nil || u.DTS != lastOut {
		t.Fatalf("header after switch: %+v, want forwarded at %d", u, lastOut)
	}
	if u := feed(audio(500_000)); u != nil {
		t.Fatalf("audio before the keyframe must be dropped, got %+v", u)
	}
	if u := feed(video(500_000, false)); u != nil {
		t.Fatalf("inter frame before the keyframe must be dropped, got %+v", u)
	}
	k := feed(video(500_040, true))
	if k == nil || k.DTS != lastOut+40 {
		t.Fatalf("first keyframe after switch: %+v, want DTS %d", k, lastOut+40)
	}
	if u := feed(video(500_080, false)); u.DTS != lastOut+80 {
		t.Fatalf("next frame DTS %d, want %d", u.DTS, lastOut+80)
	}
	// Audio slightly behind the keyframe is clamped, never backwards.
	if u := feed(audio(500_030)); u.DTS < lastOut {
		t.Fatalf("audio went backwards: %d < %d", u.DTS, lastOut)
	}
	last := map[stream.Kind]int64{}
	for _, u := range outs {
		if prev, ok := last[u.Kind]; ok && u.DTS < prev {
			t.Fatalf("%v DTS went backwards: %d after %d", u.Kind, u.DTS, prev)
		}
		last[u.Kind] = u.DTS
	}
}

func TestRebaseAudioOnlyAndWrap(t *testing.T) {
	var r rebaser
	r.newSession()
	// 32-bit wrap inside a session stays monotonic.
	a := r.next(audio(0xFFFFFFF0))
	b := r.next(audio(0x10))
	if b.DTS <= a.DTS {
		t.Fatalf("wrap: %d then %d", a.DTS, b.DTS)
	}
	r.newSession()
	// Audio-only: no keyframe to wait for.
	c := r.next(audio(7))
	if c == nil || c.DTS <= b.DTS {
		t.Fatalf("audio-only after switch: %+v, want DTS > %d", c, b.DTS)
	}
}
