package rtmp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzChunkReader feeds arbitrary bytes to the chunk reader, applying
// SetChunkSize and Abort as a connection would. It must never panic, hang
// or return a message larger than the limit.
func FuzzChunkReader(f *testing.F) {
	var seed []byte
	seed = appendUint32Control(seed, TypeSetChunkSize, 300)
	seed = AppendChunks(seed, CSIDVideo, 1, TypeVideo, 0xfffffff0, payloadOf(700, 1), 300)
	seed = AppendChunks(seed, 70, 1, TypeAudio, 10, payloadOf(20, 2), 300)
	seed = AppendChunks(seed, 400, 1, TypeDataAMF0, 0xffffff, nil, 300)
	f.Add(seed)
	f.Add(AppendChunks(nil, CSIDVideo, 1, TypeVideo, 40, payloadOf(500, 3), 128))
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0})       // SetChunkSize 0
	f.Add([]byte{0xc6, 0x46, 0, 0, 1, 0, 0, 1, 9, 0x86, 0xff, 0xff, 0xff}) // type 3/1/2 first
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := NewChunkReader(bytes.NewReader(b), limit)
		for i := 0; i < 10000; i++ {
			m, _, err := cr.ReadMessage()
			if err != nil {
				return
			}
			if len(m.Payload) > limit {
				t.Fatalf("message of %d bytes exceeds the limit", len(m.Payload))
			}
			if cr.BytesRead() > uint64(len(b)) {
				t.Fatalf("read %d bytes of %d", cr.BytesRead(), len(b))
			}
			switch m.Type {
			case TypeSetChunkSize:
				if len(m.Payload) >= 4 && cr.SetChunkSize(binary.BigEndian.Uint32(m.Payload)) != nil {
					return
				}
			case TypeAbort:
				if len(m.Payload) >= 4 {
					cr.Abort(binary.BigEndian.Uint32(m.Payload))
				}
			case TypeAggregate:
				_, _ = splitAggregate(m)
			}
		}
	})
}
