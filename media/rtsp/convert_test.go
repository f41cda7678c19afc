package rtsp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/portier/portier/media/flv"
	"github.com/portier/portier/media/stream"
)

var (
	aud   = []byte{0x09, 0xf0}
	idr   = []byte{0x65, 0x88, 0x84, 0x00}
	slice = []byte{0x41, 0x9a, 0x02}
	sei   = []byte{0x06, 0x05, 0x01, 0x00}
)

func videoTag(t *testing.T, u *stream.Unit) flv.VideoTag {
	t.Helper()
	v, err := flv.ParseVideoTag(u.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestH264IngestHeadersKeyframesAndInBandParams(t *testing.T) {
	c := newH264Ingest(testSPS, testPPS)
	h, err := c.header(0)
	if err != nil || h == nil || !h.Header || h.Kind != stream.KindVideo {
		t.Fatalf("header %+v %v", h, err)
	}
	cfg, err := flv.ParseAVCConfig(videoTag(t, h).Data)
	if err != nil || !bytes.Equal(cfg.SPS[0], testSPS) || !bytes.Equal(cfg.PPS[0], testPPS) || cfg.NALULengthSize != 4 {
		t.Fatalf("config %+v %v", cfg, err)
	}

	// An IDR access unit with AUD and repeated SPS/PPS: one keyframe,
	// no new header, AUD and parameter sets stripped, CTS 0.
	units, err := c.accessUnit([][]byte{aud, testSPS, testPPS, sei, idr}, 90000)
	if err != nil || len(units) != 1 {
		t.Fatalf("units %d %v", len(units), err)
	}
	u := units[0]
	v := videoTag(t, u)
	if !u.Key || u.Header || u.DTS != 1000 || v.FrameType != flv.FrameKey || v.PacketType != flv.PacketNALU || v.CTS != 0 {
		t.Fatalf("keyframe unit %+v tag %+v", u, v)
	}
	nalus, err := flv.SplitAVCC(v.Data, 4)
	if err != nil || len(nalus) != 2 || !bytes.Equal(nalus[0], sei) || !bytes.Equal(nalus[1], idr) {
		t.Fatalf("nalus %x %v", nalus, err)
	}

	// A P-frame 40 ms later.
	units, _ = c.accessUnit([][]byte{slice}, 90000+3600)
	if len(units) != 1 || units[0].Key || units[0].DTS != 1040 || videoTag(t, units[0]).FrameType != flv.FrameInter {
		t.Fatalf("inter unit %+v", units)
	}

	// New in-band parameters: a new sequence header before the frame.
	pps2 := []byte{0x68, 0xce, 0x3c, 0x80}
	units, _ = c.accessUnit([][]byte{testSPS, pps2, idr}, 90000+7200)
	if len(units) != 2 || !units[0].Header || units[0].DTS != 1080 || !units[1].Key {
		t.Fatalf("units after a PPS change %+v", units)
	}
	cfg, _ = flv.ParseAVCConfig(videoTag(t, units[0]).Data)
	if !bytes.Equal(cfg.PPS[0], pps2) {
		t.Fatalf("new header carries PPS %x", cfg.PPS[0])
	}
}

func TestH264IngestWaitsForParameterSets(t *testing.T) {
	c := newH264Ingest(nil, nil)
	if h, err := c.header(0); h != nil || err != nil {
		t.Fatalf("header without SPS: %+v %v", h, err)
	}
	units, err := c.accessUnit([][]byte{slice}, 0)
	if err != nil || len(units) != 0 {
		t.Fatalf("frame before SPS/PPS must be dropped: %+v %v", units, err)
	}
	units, err = c.accessUnit([][]byte{testSPS, testPPS, idr}, 3600)
	if err != nil || len(units) != 2 || !units[0].Header || !units[1].Key {
		t.Fatalf("first IDR with in-band SPS/PPS: %+v %v", units, err)
	}
}

func TestH264IngestDTSNeverGoesBack(t *testing.T) {
	// Unparseable slices make the extractor give up: DTS falls back to
	// PTS, held monotonic, and CTS stays >= 0.
	c := newH264Ingest(testSPS, testPPS)
	var last int64 = -1
	for i, pts := range []int64{0, 7200, 3600, 10800, 14400, 12000} {
		au := [][]byte{slice}
		if i == 0 {
			au = [][]byte{idr}
		}
		units, err := c.accessUnit(au, pts)
		if err != nil {
			t.Fatal(err)
		}
		u := units[len(units)-1]
		if u.DTS < last || videoTag(t, u).CTS < 0 {
			t.Fatalf("pts %d: DTS %d after %d, CTS %d", pts, u.DTS, last, videoTag(t, u).CTS)
		}
		last = u.DTS
	}
}

func TestAACIngest(t *testing.T) {
	cfg := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}
	c, err := newAACIngest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	units := c.accessUnits([][]byte{{1}, {2}, {3}}, 48000)
	if len(units) != 4 || !units[0].Header || units[0].DTS != 1000 {
		t.Fatalf("units %+v", units)
	}
	for i, want := range []int64{1000, 1021, 1042} { // 1024 samples at 48 kHz = 21.33 ms
		a, err := flv.ParseAudioTag(units[i+1].Payload)
		if err != nil || units[i+1].DTS != want || a.AACPacketType != flv.AACPacketRaw || a.Data[0] != byte(i+1) {
			t.Fatalf("AU %d: %+v %+v %v", i, units[i+1], a, err)
		}
	}
	ai, err := flv.ParseAudioSpecificConfig(must(flv.ParseAudioTag(units[0].Payload)).Data)
	if err != nil || ai.SampleRate != 48000 || ai.Channels != 2 {
		t.Fatalf("config %+v %v", ai, err)
	}
	if units := c.accessUnits([][]byte{{4}}, 96000); len(units) != 1 {
		t.Fatal("header repeated")
	}
	if _, err := newAACIngest(&mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC}); err == nil {
		t.Fatal("config without sample rate accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestH264EgressReinsertsParameterSets(t *testing.T) {
	var e h264Egress
	seqHdr, err := flv.AVCSequenceHeader(testSPS, testPPS)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(key bool, cts int32, nalus ...[]byte) *stream.Unit {
		ft := flv.FrameInter
		if key {
			ft = flv.FrameKey
		}
		return &stream.Unit{Kind: stream.KindVideo, DTS: 500, Key: key,
			Payload: flv.AppendVideoTag(nil, flv.VideoTag{FrameType: ft, CodecID: flv.CodecAVC, PacketType: flv.PacketNALU, CTS: cts, Data: flv.AppendAVCC(nil, nalus...)})}
	}
	// Before the configuration: nothing can be sent.
	if _, _, ok, err := e.accessUnit(frame(true, 0, idr)); ok || err != nil {
		t.Fatalf("frame before config: ok %v err %v", ok, err)
	}
	if _, _, ok, err := e.accessUnit(&stream.Unit{Kind: stream.KindVideo, Header: true, Payload: seqHdr}); ok || err != nil {
		t.Fatalf("header: ok %v err %v", ok, err)
	}
	au, pts, ok, err := e.accessUnit(frame(true, 80, aud, sei, idr))
	if err != nil || !ok || pts != 580 {
		t.Fatalf("keyframe: pts %d ok %v err %v", pts, ok, err)
	}
	if len(au) != 4 || !bytes.Equal(au[0], testSPS) || !bytes.Equal(au[1], testPPS) || !bytes.Equal(au[2], sei) || !bytes.Equal(au[3], idr) {
		t.Fatalf("keyframe AU %x", au)
	}
	au, _, ok, _ = e.accessUnit(frame(false, 0, slice))
	if !ok || len(au) != 1 || !bytes.Equal(au[0], slice) {
		t.Fatalf("inter AU %x", au)
	}
	// In-band parameter sets replace the ones re-inserted later.
	pps2 := []byte{0x68, 0xce, 0x3c, 0x80}
	e.accessUnit(frame(false, 0, pps2, slice))
	au, _, _, _ = e.accessUnit(frame(true, 0, idr))
	if !bytes.Equal(au[1], pps2) {
		t.Fatalf("re-inserted PPS %x", au[1])
	}
	hevc := &stream.Unit{Kind: stream.KindVideo, Payload: flv.AppendVideoTag(nil, flv.VideoTag{FrameType: flv.FrameKey, CodecID: flv.CodecHEVC, PacketType: flv.PacketNALU})}
	if _, _, _, err := e.accessUnit(hevc); !errors.Is(err, errUnsupported) {
		t.Fatalf("HEVC: %v", err)
	}
}

func TestAACEgress(t *testing.T) {
	asc := []byte{0x12, 0x10}
	e := aacEgress{asc: asc}
	if _, ok, err := e.accessUnit(&stream.Unit{Kind: stream.KindAudio, Header: true, Payload: flv.AACSequenceHeader(asc)}); ok || err != nil {
		t.Fatalf("same header: ok %v err %v", ok, err)
	}
	au, ok, err := e.accessUnit(&stream.Unit{Kind: stream.KindAudio, Payload: flv.AACFrame([]byte{7, 8})})
	if !ok || err != nil || !bytes.Equal(au, []byte{7, 8}) {
		t.Fatalf("frame %x %v %v", au, ok, err)
	}
	if _, _, err := e.accessUnit(&stream.Unit{Kind: stream.KindAudio, Header: true, Payload: flv.AACSequenceHeader([]byte{0x11, 0x90})}); !errors.Is(err, errConfigChanged) {
		t.Fatalf("changed config: %v", err)
	}
	mp3 := &stream.Unit{Kind: stream.KindAudio, Payload: flv.AppendAudioTag(nil, flv.AudioTag{SoundFormat: flv.SoundMP3, Data: []byte{1}})}
	if _, _, err := e.accessUnit(mp3); !errors.Is(err, errUnsupported) {
		t.Fatalf("MP3: %v", err)
	}
}

func TestSplitPath(t *testing.T) {
	for in, want := range map[string][2]string{
		"live/cam": {"live", "cam"}, "/live/cam/": {"live", "cam"}, "a/b/c": {"a", "b/c"},
	} {
		app, name, err := splitPath(in)
		if err != nil || app != want[0] || name != want[1] {
			t.Fatalf("%q: %q %q %v", in, app, name, err)
		}
	}
	for _, bad := range []string{"", "live", "/live/", "//cam"} {
		if _, _, err := splitPath(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
