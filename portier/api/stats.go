package api

import (
	"context"
	"time"

	"github.com/portier/portier/models"
)

// streamStatsView is a live stream's statistics in the API (null while the
// stream is offline).
type streamStatsView struct {
	VideoCodec    string  `json:"video_codec"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	FPS           float64 `json:"fps"`
	AudioCodec    string  `json:"audio_codec"`
	SampleRate    int     `json:"sample_rate"`
	Channels      int     `json:"channels"`
	Bitrate       int64   `json:"bitrate"`
	Viewers       int     `json:"viewers"`
	UptimeSeconds int64   `json:"uptime_seconds"`
	// The publisher as the origin holding the publish saw it, and the
	// GOP it measured; left out when its relay does not report them.
	PublisherAddr     string  `json:"publisher_addr,omitempty"`
	PublisherProtocol string  `json:"publisher_protocol,omitempty"`
	Encoder           string  `json:"encoder,omitempty"`
	GOPSeconds        float64 `json:"gop_seconds,omitempty"`
	GOPFrames         int     `json:"gop_frames,omitempty"`
}

// attachStats fills the Stats of the live streams among views (one query
// for all of them).
func (s *Server) attachStats(ctx context.Context, views ...*streamView) error {
	var ids []int64
	for _, v := range views {
		if v.Live {
			ids = append(ids, v.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	since, err := s.p.Store.LiveSince(ctx, ids)
	if err != nil {
		return err
	}
	now := s.lv.Now()
	for _, v := range views {
		if !v.Live {
			continue
		}
		ci := models.ParseLiveCodecInfo(v.CodecInfo)
		st := &streamStatsView{VideoCodec: ci.VideoCodec, Width: ci.Width, Height: ci.Height, FPS: ci.FPS,
			AudioCodec: ci.AudioCodec, SampleRate: ci.SampleRate, Channels: ci.Channels, Bitrate: v.Bitrate, Viewers: ci.Viewers,
			GOPSeconds: float64(ci.GOPMillis) / 1000, GOPFrames: ci.GOPFrames}
		if p := ci.Publisher; p != nil {
			st.PublisherAddr, st.PublisherProtocol, st.Encoder = p.Addr, p.Protocol, p.Encoder
		}
		if t, ok := since[v.ID]; ok {
			st.UptimeSeconds = int64(max(now.Sub(t), 0) / time.Second)
		}
		v.Stats = st
	}
	return nil
}
