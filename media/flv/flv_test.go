package flv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
)

// sample.flv: 0.4 s of 160x120 H.264 (Main profile, B-frames, GOP 5) and
// mono 44.1 kHz AAC, written by ffmpeg 5.1.
func readSample(t *testing.T) []Tag {
	t.Helper()
	f, err := os.Open("testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReader(f, 0)
	var tags []Tag
	for {
		tag, err := r.Next()
		if err == io.EOF {
			return tags
		}
		if err != nil {
			t.Fatalf("tag %d: %v", len(tags), err)
		}
		tags = append(tags, tag)
	}
}

func TestSampleFile(t *testing.T) {
	tags := readSample(t)
	var video, keyframes, audio, negCTS, posCTS, endOfSeq int
	var cfg *AVCConfig
	var nalus int
	for _, tag := range tags {
		switch tag.Type {
		case TagScript:
			md, err := ParseMetadata(tag.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if md["width"] != 160.0 || md["height"] != 120.0 || md["videocodecid"] != 7.0 {
				t.Fatalf("metadata %v", md)
			}
		case TagVideo:
			v, err := ParseVideoTag(tag.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if v.CodecID != CodecAVC {
				t.Fatalf("codec %d", v.CodecID)
			}
			if v.SequenceHeader() {
				if cfg, err = ParseAVCConfig(v.Data); err != nil {
					t.Fatal(err)
				}
				info, err := cfg.VideoInfo()
				if err != nil {
					t.Fatal(err)
				}
				if info.Width != 160 || info.Height != 120 || info.Profile != 77 || info.FPS != 25 {
					t.Fatalf("video info %+v", info)
				}
				continue
			}
			if v.PacketType == PacketEndOfSequence {
				endOfSeq++
				continue
			}
			video++
			if v.Keyframe() {
				keyframes++
			}
			if v.CTS > 0 {
				posCTS++
			}
			if v.CTS < 0 {
				negCTS++
			}
			// AVCC → Annex-B → AVCC is the identity with 4-byte lengths.
			annexb, err := AVCCToAnnexB(v.Data, cfg.NALULengthSize)
			if err != nil {
				t.Fatal(err)
			}
			back, err := AnnexBToAVCC(annexb)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, v.Data) {
				t.Fatal("AVCC/Annex-B round trip changed the access unit")
			}
			units, _ := SplitAVCC(v.Data, cfg.NALULengthSize)
			nalus += len(units)
			// Re-encoding the parsed tag gives the same bytes.
			if !bytes.Equal(AppendVideoTag(nil, v), tag.Payload) {
				t.Fatal("video tag does not re-encode identically")
			}
		case TagAudio:
			a, err := ParseAudioTag(tag.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if a.SoundFormat != SoundAAC {
				t.Fatalf("sound format %d", a.SoundFormat)
			}
			if a.SequenceHeader() {
				info, err := ParseAudioSpecificConfig(a.Data)
				if err != nil {
					t.Fatal(err)
				}
				if info.SampleRate != 44100 || info.Channels != 1 || info.ObjectType != 2 {
					t.Fatalf("audio info %+v", info)
				}
				if !bytes.Equal(AACSequenceHeader(a.Data)[2:], a.Data) {
					t.Fatal("AACSequenceHeader")
				}
				continue
			}
			audio++
			if !bytes.Equal(AppendAudioTag(nil, a), tag.Payload) {
				t.Fatal("audio tag does not re-encode identically")
			}
		}
	}
	if cfg == nil || video != 10 || keyframes != 2 || endOfSeq != 1 || audio < 15 || posCTS == 0 || nalus < video {
		t.Fatalf("cfg %v video %d keyframes %d audio %d posCTS %d negCTS %d", cfg != nil, video, keyframes, audio, posCTS, negCTS)
	}
	// The configuration record we build from the same SPS/PPS starts like ffmpeg's.
	rec, err := BuildAVCConfig(cfg.SPS, cfg.PPS)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseAVCConfig(rec)
	if err != nil || !reflect.DeepEqual(again, cfg) {
		t.Fatalf("rebuilt record %+v, %v", again, err)
	}
	seq, err := AVCSequenceHeader(cfg.SPS[0], cfg.PPS[0])
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ParseVideoTag(seq)
	if !v.SequenceHeader() || !v.Keyframe() || !bytes.Equal(v.Data, rec) {
		t.Fatalf("AVCSequenceHeader %+v", v)
	}
}

func TestFileRoundTrip(t *testing.T) {
	tags := readSample(t)
	out := AppendHeader(nil, true, true)
	for _, tag := range tags {
		out = AppendTag(out, tag.Type, tag.Timestamp, tag.Payload)
	}
	orig, err := os.ReadFile("testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, orig) {
		t.Fatalf("rewritten file differs from ffmpeg's (%d vs %d bytes)", len(out), len(orig))
	}
	audio, video, off, err := ParseHeader(out)
	if !audio || !video || off != HeaderSize || err != nil {
		t.Fatalf("ParseHeader: %v %v %d %v", audio, video, off, err)
	}
}

func TestVideoTagTable(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want VideoTag
		err  bool
	}{
		{"avc nalu negative cts", []byte{0x27, 1, 0xff, 0xff, 0xd8, 9}, VideoTag{FrameType: 2, CodecID: 7, PacketType: 1, CTS: -40, Data: []byte{9}}, false},
		{"avc key positive cts", []byte{0x17, 1, 0, 0, 80}, VideoTag{FrameType: 1, CodecID: 7, PacketType: 1, CTS: 80, Data: []byte{}}, false},
		{"hevc legacy", []byte{0x1c, 0, 0, 0, 0, 1, 2}, VideoTag{FrameType: 1, CodecID: 12, PacketType: 0, Data: []byte{1, 2}}, false},
		{"vp6 passthrough", []byte{0x24, 7, 8}, VideoTag{FrameType: 2, CodecID: 4, Data: []byte{7, 8}}, false},
		{"enhanced", []byte{0x90, 'h', 'v', 'c', '1', 5}, VideoTag{FrameType: 1, ExHeader: true, FourCC: [4]byte{'h', 'v', 'c', '1'}, PacketType: 0, Data: []byte{5}}, false},
		{"empty", nil, VideoTag{}, true},
		{"short avc", []byte{0x17, 1, 0}, VideoTag{}, true},
		{"short enhanced", []byte{0x90, 'h'}, VideoTag{}, true},
	}
	for _, c := range cases {
		got, err := ParseVideoTag(c.in)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if c.err {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v want %+v", c.name, got, c.want)
		}
		if !bytes.Equal(AppendVideoTag(nil, got), c.in) {
			t.Errorf("%s: re-encoding differs", c.name)
		}
	}
}

func TestAudioTagTable(t *testing.T) {
	a, err := ParseAudioTag([]byte{0xaf, 1, 0x21})
	if err != nil || a.SoundFormat != SoundAAC || a.AACPacketType != AACPacketRaw || a.SoundRate != 3 || a.SoundType != 1 || !bytes.Equal(a.Data, []byte{0x21}) {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAudioTag([]byte{0x2e, 0xff})
	if err != nil || a.SoundFormat != SoundMP3 || !bytes.Equal(a.Data, []byte{0xff}) {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := ParseAudioTag([]byte{0xaf}); !errors.Is(err, ErrShort) {
		t.Fatalf("short AAC: %v", err)
	}
	if _, err := ParseAudioSpecificConfig([]byte{0xff}); err == nil {
		t.Fatal("bad AudioSpecificConfig accepted")
	}
}

func TestAVCHelpersErrors(t *testing.T) {
	if _, err := SplitAVCC([]byte{0, 0, 0, 9, 1}, 4); !errors.Is(err, ErrShort) {
		t.Fatalf("truncated NALU: %v", err)
	}
	if _, err := SplitAVCC([]byte{1}, 5); err == nil {
		t.Fatal("length size 5 accepted")
	}
	if _, err := ParseAVCConfig([]byte{1, 100, 0, 30, 0xff, 0xe1, 0, 50}); err == nil {
		t.Fatal("truncated record accepted")
	}
	if _, err := AnnexBToAVCC([]byte{1, 2, 3}); err == nil {
		t.Fatal("not Annex-B accepted")
	}
	if _, err := BuildAVCConfig(nil, nil); err == nil {
		t.Fatal("no SPS accepted")
	}
	nal := [][]byte{{0x67, 1, 2, 3}, {0x68, 4}}
	b := AppendAVCC(nil, nal...)
	got, err := SplitAVCC(b, 4)
	if err != nil || !reflect.DeepEqual(got, nal) {
		t.Fatalf("%v %v", got, err)
	}
}

func TestMetadata(t *testing.T) {
	b, err := BuildMetadata(map[string]any{"width": 640.0, "encoder": "portier"})
	if err != nil {
		t.Fatal(err)
	}
	md, err := ParseMetadata(b)
	if err != nil || md["width"] != 640.0 || md["encoder"] != "portier" {
		t.Fatalf("%v %v", md, err)
	}
	wrapped := append([]byte{2, 0, 13}, "@setDataFrame"...)
	wrapped = append(wrapped, b...)
	stripped, ok := StripSetDataFrame(wrapped)
	if !ok || !bytes.Equal(stripped, b) {
		t.Fatal("StripSetDataFrame")
	}
	if _, ok := StripSetDataFrame(b); ok {
		t.Fatal("StripSetDataFrame stripped onMetaData")
	}
	if md, err := ParseMetadata(wrapped); err != nil || md["width"] != 640.0 {
		t.Fatalf("wrapped: %v %v", md, err)
	}
	if _, err := ParseMetadata([]byte{2, 0, 1, 'x'}); err == nil {
		t.Fatal("non-metadata accepted")
	}
}

func TestParseTagErrors(t *testing.T) {
	tag := AppendTag(nil, TagVideo, 0x01020304, []byte{0x17, 1})
	got, n, err := ParseTag(tag)
	if err != nil || n != len(tag) || got.Timestamp != 0x01020304 || got.Type != TagVideo {
		t.Fatalf("%+v %d %v", got, n, err)
	}
	bad := append([]byte(nil), tag...)
	bad[len(bad)-1]++
	if _, _, err := ParseTag(bad); err == nil {
		t.Fatal("wrong PreviousTagSize accepted")
	}
	if _, _, err := ParseTag(tag[:12]); !errors.Is(err, ErrShort) {
		t.Fatalf("short tag: %v", err)
	}
	r := NewReader(bytes.NewReader(append(AppendHeader(nil, false, true), 9, 0x10, 0, 0)), 1000)
	if _, err := r.Next(); err == nil {
		t.Fatal("truncated tag header accepted")
	}
	huge := append(AppendHeader(nil, false, true), 9, 0x7f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0)
	if _, err := NewReader(bytes.NewReader(huge), 1000).Next(); err == nil {
		t.Fatal("oversized tag accepted")
	}
}

// FuzzFLVTag parses arbitrary tag bytes and every kind of tag body in them.
func FuzzFLVTag(f *testing.F) {
	f.Add(AppendTag(nil, TagVideo, 40, []byte{0x17, 0, 0, 0, 0, 1, 100, 0, 30, 0xff, 0xe1, 0, 4, 0x67, 100, 0, 30, 1, 0, 2, 0x68, 1}))
	f.Add(AppendTag(nil, TagAudio, 0, []byte{0xaf, 0, 0x12, 0x10}))
	f.Add(AppendTag(nil, TagVideo, 1, []byte{0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 2, 0x41, 1}))
	md, _ := BuildMetadata(map[string]any{"width": 1.0})
	f.Add(AppendTag(nil, TagScript, 0, md))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, _, err := ParseTag(b)
		if err != nil {
			return
		}
		_, _ = Classify(tag.Type, tag.Payload)
		switch tag.Type {
		case TagVideo:
			v, err := ParseVideoTag(tag.Payload)
			if err != nil {
				return
			}
			if !v.ExHeader && !bytes.Equal(AppendVideoTag(nil, v), tag.Payload) && (v.CodecID == CodecAVC || v.CodecID == CodecHEVC) {
				t.Fatal("video tag does not re-encode identically")
			}
			if v.SequenceHeader() {
				if cfg, err := ParseAVCConfig(v.Data); err == nil {
					_, _ = cfg.VideoInfo()
				}
			} else {
				if annexb, err := AVCCToAnnexB(v.Data, 4); err == nil {
					_, _ = AnnexBToAVCC(annexb)
				}
			}
		case TagAudio:
			a, err := ParseAudioTag(tag.Payload)
			if err == nil && a.SequenceHeader() {
				_, _ = ParseAudioSpecificConfig(a.Data)
			}
		case TagScript:
			_, _ = ParseMetadata(tag.Payload)
			_, _ = StripSetDataFrame(tag.Payload)
		}
	})
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name        string
		typ         uint8
		in          []byte
		key, header bool
	}{
		{"avc keyframe", TagVideo, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}, true, false},
		{"avc inter", TagVideo, []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}, false, false},
		{"avc sequence header", TagVideo, []byte{0x17, 0, 0, 0, 0, 1, 100}, false, true},
		{"avc end of sequence", TagVideo, []byte{0x17, 2, 0, 0, 0}, false, false},
		{"hevc legacy key", TagVideo, []byte{0x1c, 1, 0, 0, 0, 9}, true, false},
		{"enhanced sequence start", TagVideo, []byte{0x90, 'h', 'v', 'c', '1'}, false, true},
		{"enhanced coded frames key", TagVideo, []byte{0x91, 'h', 'v', 'c', '1', 0, 0, 0}, true, false},
		{"aac config", TagAudio, []byte{0xaf, 0, 0x12, 0x10}, false, true},
		{"aac raw", TagAudio, []byte{0xaf, 1, 0x21}, false, false},
		{"mp3", TagAudio, []byte{0x2f, 0xff}, false, false},
		{"metadata", TagScript, []byte{2, 0, 10}, false, true},
		{"empty video", TagVideo, nil, false, false},
		{"unknown type", 7, []byte{1}, false, false},
	}
	for _, c := range cases {
		key, header := Classify(c.typ, c.in)
		if key != c.key || header != c.header {
			t.Errorf("%s: key %v header %v, want %v %v", c.name, key, header, c.key, c.header)
		}
	}
}
