package portier

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/portier/portier/portier/live"
	"math"
	"strings"
	"time"

	"github.com/portier/portier/models"
)

// Live statistics of streams. Relays report every stream they have with
// each heartbeat (nodewire.StreamReport); the control plane keeps one
// row per relay and stream (stream_stats), and the origin holding a
// stream's publish writes the stream's codecs, bitrate and viewers into
// streams.codec_info and streams.bitrate, which the API and the UI read.
//
// Viewers: every relay counts its readers, relay-internal ones included.
// The origin cannot tell an edge's upstream pull from a player (both are
// RTMP plays), so the count is the players of every relay minus one per
// edge that has the stream's publisher: an edge that pulls the stream is
// one player at the origin, and an edge that forwards a client's publish
// has the forwarding session as one player of its own. Concierge tasks
// that pull a stream (restreams, records, HLS transcodes) and thumbnail
// grabs are not viewers: they play with nodewire.InternalPlayQuery, and
// relays leave them out of the players they report.

// maxStreamReports bounds the streams of one heartbeat.
const maxStreamReports = 100_000

// streamReportReq is one element of a heartbeat's "streams".
type streamReportReq struct {
	Path      string `json:"path"`
	Publisher bool   `json:"publisher"`
	models.StreamCodec
	BitrateIn int64 `json:"bitrate_in"`
	Players   int   `json:"players"`
}

// parseStreamReports decodes and checks a heartbeat's "streams". It
// returns nil (and no error) when the field is absent or null. A body that
// is not a list of objects is refused (the field and a message say what is
// wrong); single entries that make no sense (a path that is not app/name,
// negative figures) are left out, like invalid "published" entries, so
// that one odd stream never stops a relay's heartbeats (which would make
// it look dead).
func parseStreamReports(raw json.RawMessage) (out []models.StreamStatReport, field, msg string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", ""
	}
	var list []streamReportReq
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, "streams", "streams must be a list of {\"path\":\"app/name\",\"publisher\":bool,\"players\":N,...} objects"
	}
	if len(list) > maxStreamReports {
		return nil, "streams", fmt.Sprintf("at most %d streams", maxStreamReports)
	}
	out = make([]models.StreamStatReport, 0, len(list))
	for _, r := range list {
		app, name, ok := strings.Cut(r.Path, "/")
		if !ok || live.CheckAppName(app, name) != nil ||
			r.Players < 0 || r.BitrateIn < 0 || r.Width < 0 || r.Height < 0 || r.SampleRate < 0 || r.Channels < 0 ||
			r.FPS < 0 || r.FPS > 1000 || len(r.VideoCodec) > 32 || len(r.AudioCodec) > 32 {
			continue
		}
		codec := r.StreamCodec
		codec.FPS = math.Round(codec.FPS*100) / 100
		out = append(out, models.StreamStatReport{App: app, Name: name, Publisher: r.Publisher, Players: r.Players,
			BitrateIn: r.BitrateIn, Codec: codec})
	}
	return out, "", ""
}

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
			AudioCodec: ci.AudioCodec, SampleRate: ci.SampleRate, Channels: ci.Channels, Bitrate: v.Bitrate, Viewers: ci.Viewers}
		if t, ok := since[v.ID]; ok {
			st.UptimeSeconds = int64(max(now.Sub(t), 0) / time.Second)
		}
		v.Stats = st
	}
	return nil
}
