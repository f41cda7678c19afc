package flv

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// AudioInfo is what an AudioSpecificConfig says about an AAC stream.
type AudioInfo struct {
	ObjectType int // 2 = AAC-LC
	SampleRate int
	Channels   int
}

// ParseAudioSpecificConfig decodes an AAC AudioSpecificConfig (the Data of
// an AAC sequence header tag).
func ParseAudioSpecificConfig(b []byte) (AudioInfo, error) {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(b); err != nil {
		return AudioInfo{}, fmt.Errorf("flv: AudioSpecificConfig: %w", err)
	}
	ch := int(c.ChannelConfig)
	if ch == 7 {
		ch = 8
	}
	return AudioInfo{ObjectType: int(c.Type), SampleRate: c.SampleRate, Channels: ch}, nil
}

// AACSequenceHeader builds the body of an AAC sequence header audio tag.
func AACSequenceHeader(asc []byte) []byte {
	return AppendAudioTag(nil, AudioTag{SoundFormat: SoundAAC, SoundRate: 3, SoundSize: 1, SoundType: 1, AACPacketType: AACPacketSequenceHeader, Data: asc})
}

// AACFrame builds the body of a raw AAC frame audio tag.
func AACFrame(frame []byte) []byte {
	return AppendAudioTag(nil, AudioTag{SoundFormat: SoundAAC, SoundRate: 3, SoundSize: 1, SoundType: 1, AACPacketType: AACPacketRaw, Data: frame})
}
