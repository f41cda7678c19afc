package rtmp

import (
	"bytes"
	"testing"
)

// BenchmarkAppendChunks measures encoding one 30 KB video frame, the work
// done once per message and shared by every player.
func BenchmarkAppendChunks(b *testing.B) {
	p := payloadOf(30000, 1)
	buf := make([]byte, 0, ChunkedSize(CSIDVideo, 0, len(p), DefaultChunkSize))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		buf = AppendChunks(buf[:0], CSIDVideo, 1, TypeVideo, 40, p, DefaultChunkSize)
	}
}

// BenchmarkChunkReader measures reassembling 30 KB frames at chunk size 4096.
func BenchmarkChunkReader(b *testing.B) {
	p := payloadOf(30000, 1)
	var wire []byte
	for i := 0; i < 100; i++ {
		wire = AppendChunks(wire, CSIDVideo, 1, TypeVideo, uint32(i*40), p, DefaultChunkSize)
	}
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		cr := NewChunkReader(bytes.NewReader(wire), 0)
		_ = cr.SetChunkSize(DefaultChunkSize)
		for i := 0; i < 100; i++ {
			if _, _, err := cr.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
