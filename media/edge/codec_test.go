package edge

import (
	"testing"

	"github.com/portier/portier/media/flv/flvtest"
	"github.com/portier/portier/media/rtmp"
	"github.com/portier/portier/media/stream"
)

// sampleMessages is media/flv's ffmpeg sample as RTMP messages.
func sampleMessages(t *testing.T) []rtmp.Message {
	var msgs []rtmp.Message
	for _, tag := range flvtest.SampleTags(t) {
		msgs = append(msgs, rtmp.Message{Type: tag.Type, Timestamp: tag.Timestamp, Payload: tag.Payload})
	}
	return msgs
}

func TestCodecInfoFromSample(t *testing.T) {
	var ci stream.CodecInfo
	changed := 0
	for _, m := range sampleMessages(t) {
		if u := unitFromMessage(m); u != nil && u.Header && codecInfo(&ci, u) {
			changed++
		}
	}
	want := stream.CodecInfo{VideoCodec: "h264", Width: 160, Height: 120, AudioCodec: "aac", SampleRate: 44100, Channels: 1}
	if ci != want || changed != 2 {
		t.Fatalf("codec info %+v after %d changes, want %+v after 2", ci, changed, want)
	}
}

// TestRebaseSampleTwice plays the sample as two upstream sessions with
// unrelated clocks, the second joined mid-GOP: the output starts the second
// session on a keyframe and stays monotonic per track.
func TestRebaseSampleTwice(t *testing.T) {
	msgs := sampleMessages(t)
	var r rebaser
	r.newSession()
	var out []*stream.Unit
	for _, m := range msgs {
		if u := r.next(m); u != nil {
			out = append(out, u)
		}
	}
	first := len(out)
	r.newSession()
	for i, m := range msgs {
		if i < len(msgs)/3 && !(m.Type == rtmp.TypeVideo && m.Payload[1] == 0) && m.Type != rtmp.TypeDataAMF0 {
			continue // join after the first third, headers first
		}
		m.Timestamp += 7_000_000
		if u := r.next(m); u != nil {
			out = append(out, u)
		}
	}
	var firstMedia *stream.Unit
	for _, u := range out[first:] {
		if !u.Header {
			firstMedia = u
			break
		}
	}
	if firstMedia == nil || firstMedia.Kind != stream.KindVideo || !firstMedia.Key {
		t.Fatalf("second session starts with %+v, want a video keyframe", firstMedia)
	}
	last := map[stream.Kind]int64{}
	for i, u := range out {
		if p, ok := last[u.Kind]; ok && u.DTS < p {
			t.Fatalf("unit %d (%v): DTS %d after %d", i, u.Kind, u.DTS, p)
		}
		last[u.Kind] = u.DTS
	}
	var lastOut int64
	for _, u := range out[:first] {
		lastOut = max(lastOut, u.DTS)
	}
	// out = lastOut + one frame interval + (up - firstUpAfterSwitch).
	if d := firstMedia.DTS - lastOut; d <= 0 || d > 100 {
		t.Fatalf("DTS step across the switch = %d ms, want one frame interval", d)
	}
}
