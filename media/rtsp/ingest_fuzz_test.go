package rtsp

import (
	"encoding/binary"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	pionrtp "github.com/pion/rtp"

	"github.com/portier/portier/media/stream"
)

// FuzzIngest feeds arbitrary RTP packets to the depacketisers an RTSP
// publish and an RTSP pull share (H.264, AAC, AAC in LATM): nothing may
// panic, whatever a publisher or a pulled camera sends. The input is a list
// of 2-byte-length-prefixed packets; the first byte of each picks the
// track, the rest is the RTP packet.
func FuzzIngest(f *testing.F) {
	pkt := func(track byte, p pionrtp.Packet) []byte {
		b, _ := p.Marshal()
		b = append([]byte{track}, b...)
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	hdr := pionrtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 3000, Marker: true}
	var seed []byte
	seed = append(seed, pkt(0, pionrtp.Packet{Header: hdr, Payload: append([]byte{}, idr...)})...)
	hdr.PayloadType, hdr.SequenceNumber = 97, 2
	seed = append(seed, pkt(1, pionrtp.Packet{Header: hdr, Payload: []byte{0, 16, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}})...)
	hdr.PayloadType, hdr.SequenceNumber = 98, 3
	seed = append(seed, pkt(2, pionrtp.Packet{Header: hdr, Payload: []byte{4, 1, 2, 3, 4}})...)
	f.Add(seed)
	f.Add([]byte{0, 3, 0, 0x80, 96})
	f.Fuzz(func(t *testing.T, data []byte) {
		hub := stream.NewHub(stream.HubParams{})
		defer hub.Close()
		asc := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelConfig: 2}
		fmts := []format.Format{
			&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS},
			&format.MPEG4Audio{PayloadTyp: 97, Config: asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
			&format.MPEG4AudioLATM{PayloadTyp: 98, StreamMuxConfig: &mpeg4audio.StreamMuxConfig{
				Programs: []*mpeg4audio.StreamMuxConfigProgram{{Layers: []*mpeg4audio.StreamMuxConfigLayer{{AudioSpecificConfig: asc}}}}}},
		}
		// Two ingests: video with AAC, and LATM alone (one audio each).
		var ins []*Ingest
		var tracks [][]Track
		for i, group := range [][]format.Format{fmts[:2], fmts[2:]} {
			pub, err := hub.Publish("live/f"+string(rune('a'+i)), stream.PublisherInfo{})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			var ts []Track
			for j, fm := range group {
				tr, _, err := trackOf(j, &description.Media{Formats: []format.Format{fm}}, fm)
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, tr)
			}
			in, err := NewIngest(IngestParams{Publisher: pub, Tracks: ts,
				PTS: func(_ *description.Media, p *pionrtp.Packet) (int64, bool) { return int64(p.Timestamp), true }})
			if err != nil {
				t.Fatal(err)
			}
			if err := in.WriteHeaders(); err != nil {
				t.Fatal(err)
			}
			ins, tracks = append(ins, in), append(tracks, ts)
		}
		handlers := []func(*description.Media, *pionrtp.Packet){
			ins[0].Handler(tracks[0][0]), ins[0].Handler(tracks[0][1]), ins[1].Handler(tracks[1][0]),
		}
		medias := []*description.Media{tracks[0][0].Media(), tracks[0][1].Media(), tracks[1][0].Media()}
		for i := 0; len(data) >= 2 && i < 512; i++ {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			chunk := data[2 : 2+n]
			data = data[2+n:]
			if len(chunk) < 1 {
				continue
			}
			k := int(chunk[0]) % len(handlers)
			var p pionrtp.Packet
			if p.Unmarshal(chunk[1:]) != nil {
				continue
			}
			handlers[k](medias[k], &p)
		}
		for _, in := range ins {
			in.Close()
		}
	})
}
