package rtsp

import (
	"encoding/binary"
	"testing"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

// FuzzH264Convert feeds arbitrary access units to the ingest converter and
// arbitrary FLV video tag bodies to the play converter: neither may panic,
// ingest DTS never goes back, and CTS is never negative. The input is a
// list of 2-byte-length-prefixed chunks; each is used as both an access
// unit (split at 0x00 0x00 0x01) and a tag body.
func FuzzH264Convert(f *testing.F) {
	chunks := func(cs ...[]byte) []byte {
		var b []byte
		for _, c := range cs {
			b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
			b = append(b, c...)
		}
		return b
	}
	seqHdr, _ := flv.AVCSequenceHeader(testSPS, testPPS)
	key := flv.AppendVideoTag(nil, flv.VideoTag{FrameType: flv.FrameKey, CodecID: flv.CodecAVC, PacketType: flv.PacketNALU, Data: flv.AppendAVCC(nil, idr)})
	f.Add(chunks(seqHdr, key, append(append([]byte{}, testSPS...), append([]byte{0, 0, 1}, idr...)...)))
	f.Add(chunks([]byte{0x17, 0, 0, 0, 0, 1, 0x42}, []byte{0x65}, []byte{0x67}, []byte{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := newH264Ingest(nil, nil)
		var out h264Egress
		last := int64(-1 << 62)
		for i := 0; len(data) >= 2 && i < 256; i++ {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			chunk := data[:n]
			data = data[n:]

			units, err := in.accessUnit(splitStartCodes(chunk), int64(i)*3600)
			if err == nil {
				for _, u := range units {
					if u.Header {
						continue
					}
					v, err := flv.ParseVideoTag(u.Payload)
					if err != nil || v.CTS < 0 || u.DTS < last {
						t.Fatalf("unit %+v tag %+v err %v last %d", u, v, err, last)
					}
					last = u.DTS
				}
			}
			u := &stream.Unit{Kind: stream.KindVideo, DTS: int64(i) * 40, Payload: chunk}
			if au, _, ok, err := out.accessUnit(u); ok && (err != nil || len(au) == 0) {
				t.Fatalf("ok with err %v and %d NAL units", err, len(au))
			}
		}
	})
}

// splitStartCodes splits b at 00 00 01 into NAL units.
func splitStartCodes(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			out = append(out, b[start:i])
			start = i + 3
			i += 2
		}
	}
	return append(out, b[start:])
}
