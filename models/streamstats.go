package models

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// StreamCodec is what a relay learned about a stream's tracks.
type StreamCodec struct {
	VideoCodec string  `json:"video_codec,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	AudioCodec string  `json:"audio_codec,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	// GOPMillis and GOPFrames are the last complete group of pictures the
	// relay received (keyframe to keyframe, from their timestamps).
	GOPMillis int64 `json:"gop_ms,omitempty"`
	GOPFrames int   `json:"gop_frames,omitempty"`
}

// StreamPublisher is who publishes a stream, as the relay holding the
// publish saw it: address (IP:port), protocol and the software it named
// (RTMP onMetaData "encoder" or connect flashVer, RTSP User-Agent).
type StreamPublisher struct {
	Addr     string `json:"addr,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Encoder  string `json:"encoder,omitempty"`
}

// LiveCodecInfo is the document stored in Stream.CodecInfo while a stream
// is live: the codecs reported by the origin holding its publish and the
// viewers counted over every relay (see UpdateNodeStreamStats).
type LiveCodecInfo struct {
	StreamCodec
	// Publisher is the origin's view of the publisher (nil from relays
	// that do not report it).
	Publisher *StreamPublisher `json:"publisher,omitempty"`
	Viewers   int              `json:"viewers"`
}

// StreamStat is one relay's statistics of one stream, replaced by each of
// its heartbeats.
type StreamStat struct {
	StreamID  int64  `gorm:"primaryKey;autoIncrement:false"`
	NodeName  string `gorm:"primaryKey"`
	NodeRole  string
	Publisher bool
	Players   int
	BitrateIn int64
	Codec     RawJSON
	UpdatedAt time.Time
}

// StreamStatReport is one stream in a relay's heartbeat.
type StreamStatReport struct {
	App, Name string
	// Publisher: the relay has a publisher for the stream (on an edge: its
	// upstream pull, or a client publish it forwards to an origin).
	Publisher bool
	Players   int
	BitrateIn int64
	Codec     StreamCodec
	// PublishedBy is the relay's publisher (zero when not reported).
	PublishedBy StreamPublisher
}

// UpdateNodeStreamStats replaces the stream statistics of node (of role)
// with reports, in one transaction. Reports of unknown streams are
// ignored. For each stream whose publish an origin node holds, it also
// stores the stream's codec info and bitrate from this report, and its
// viewers: the players of every relay that reported since aliveSince,
// minus one per edge that has the stream's publisher (an edge's upstream
// pull is a player at the origin, and a publish an edge forwards is a
// player at the edge; both are relay-internal sessions, one per edge).
func (s *Store) UpdateNodeStreamStats(ctx context.Context, node, role string, reports []StreamStatReport, now, aliveSince time.Time) error {
	now, aliveSince = now.UTC(), aliveSince.UTC()
	ids, err := s.streamIDsByPath(ctx, reports)
	if err != nil {
		return err
	}
	rows := make([]StreamStat, 0, len(reports))
	byID := make(map[int64]StreamStatReport, len(reports))
	for _, r := range reports {
		id, ok := ids[r.App+"/"+r.Name]
		if !ok {
			continue
		}
		if _, dup := byID[id]; dup {
			continue
		}
		byID[id] = r
		rows = append(rows, StreamStat{StreamID: id, NodeName: node, NodeRole: role, Publisher: r.Publisher,
			Players: max(r.Players, 0), BitrateIn: max(r.BitrateIn, 0), Codec: MustJSON(r.Codec), UpdatedAt: now})
	}
	return s.Tx(ctx, func(tx *Store) error {
		del := tx.db(ctx).Where("node_name = ?", node)
		if len(rows) > 0 {
			keep := make([]int64, 0, len(rows))
			for _, r := range rows {
				keep = append(keep, r.StreamID)
			}
			del = del.Where("stream_id NOT IN ?", keep)
		}
		if err := del.Delete(&StreamStat{}).Error; err != nil {
			return fmt.Errorf("stream stats of node %s: remove old: %w", node, err)
		}
		if len(rows) == 0 {
			return nil
		}
		err := tx.db(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "stream_id"}, {Name: "node_name"}},
			DoUpdates: clause.AssignmentColumns([]string{"node_role", "publisher", "players", "bitrate_in", "codec", "updated_at"}),
		}).CreateInBatches(rows, 200).Error
		if err != nil {
			return fmt.Errorf("stream stats of node %s: %w", node, err)
		}
		if role != NodeRoleOrigin {
			return nil
		}
		for _, row := range rows {
			if !row.Publisher {
				continue
			}
			if err := tx.updateLiveCodecInfo(ctx, row.StreamID, node, byID[row.StreamID], aliveSince); err != nil {
				return err
			}
		}
		return nil
	})
}

// updateLiveCodecInfo stores r's codecs and bitrate, with the viewers over
// every relay, on stream id if node holds its publish.
func (s *Store) updateLiveCodecInfo(ctx context.Context, id int64, node string, r StreamStatReport, aliveSince time.Time) error {
	var agg struct {
		Players int64
		Edges   int64
	}
	err := s.db(ctx).Raw(`SELECT COALESCE(SUM(players), 0) AS players,
		COALESCE(SUM(CASE WHEN node_role = ? AND publisher THEN 1 ELSE 0 END), 0) AS edges
		FROM stream_stats WHERE stream_id = ? AND updated_at >= ?`, NodeRoleEdge, id, aliveSince).Scan(&agg).Error
	if err != nil {
		return fmt.Errorf("viewers of stream %d: %w", id, err)
	}
	info := LiveCodecInfo{StreamCodec: r.Codec, Viewers: int(max(agg.Players-agg.Edges, 0))}
	if r.PublishedBy != (StreamPublisher{}) {
		pb := r.PublishedBy
		info.Publisher = &pb
	}
	err = s.db(ctx).Model(&Stream{}).
		Where("id = ? AND live = ? AND EXISTS (SELECT 1 FROM stream_origins WHERE stream_origins.stream_id = ? AND stream_origins.node_name = ?)", id, true, id, node).
		Updates(map[string]any{"codec_info": MustJSON(info), "bitrate": max(r.BitrateIn, 0)}).Error
	if err != nil {
		return fmt.Errorf("codec info of stream %d: %w", id, err)
	}
	return nil
}

// streamIDsByPath maps the "app/name" of reports to stream ids (unknown
// streams are absent).
func (s *Store) streamIDsByPath(ctx context.Context, reports []StreamStatReport) (map[string]int64, error) {
	out := make(map[string]int64, len(reports))
	const chunk = 500
	for i := 0; i < len(reports); i += chunk {
		names := make([]string, 0, chunk)
		for _, r := range reports[i:min(i+chunk, len(reports))] {
			names = append(names, r.Name)
		}
		var found []struct {
			ID   int64
			App  string
			Name string
		}
		err := s.db(ctx).Table("streams").
			Select("streams.id AS id, applications.name AS app, streams.name AS name").
			Joins("JOIN applications ON applications.id = streams.application_id").
			Where("streams.name IN ?", names).Scan(&found).Error
		if err != nil {
			return nil, fmt.Errorf("find reported streams: %w", err)
		}
		for _, f := range found {
			out[f.App+"/"+f.Name] = f.ID
		}
	}
	return out, nil
}

// StreamStats lists the statistics of stream id reported since aliveSince,
// by node name.
func (s *Store) StreamStats(ctx context.Context, id int64, aliveSince time.Time) ([]StreamStat, error) {
	var out []StreamStat
	err := s.db(ctx).Where("stream_id = ? AND updated_at >= ?", id, aliveSince.UTC()).Order("node_name").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("stream stats of stream %d: %w", id, err)
	}
	return out, nil
}

// RemoveStaleStreamStats removes the statistics not refreshed since before
// (relays that stopped heartbeating) and returns how many went.
func (s *Store) RemoveStaleStreamStats(ctx context.Context, before time.Time) (int64, error) {
	res := s.db(ctx).Where("updated_at < ?", before.UTC()).Delete(&StreamStat{})
	if res.Error != nil {
		return 0, fmt.Errorf("remove stale stream stats: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// LiveSince returns, for each of ids that has origins, the earliest time
// one of its current origins started holding the publish (the stream has
// been live at least since then).
func (s *Store) LiveSince(ctx context.Context, ids []int64) (map[int64]time.Time, error) {
	out := make(map[int64]time.Time, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []StreamOrigin
	if err := s.db(ctx).Where("stream_id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("live since: %w", err)
	}
	for _, o := range rows {
		if t, ok := out[o.StreamID]; !ok || o.Since.Before(t) {
			out[o.StreamID] = o.Since
		}
	}
	return out, nil
}

// ParseLiveCodecInfo reads a Stream.CodecInfo document (unknown fields and
// an empty document give zero values).
func ParseLiveCodecInfo(raw RawJSON) LiveCodecInfo {
	var ci LiveCodecInfo
	if len(raw) > 0 && strings.TrimSpace(string(raw)) != "" {
		_ = json.Unmarshal(raw, &ci)
	}
	return ci
}

// NodeStreamPlayers is one stream a relay reported, with its players there.
type NodeStreamPlayers struct {
	App     string
	Name    string
	Players int
}

// NodeStreamStats lists the streams node reported since aliveSince, by
// app and name.
func (s *Store) NodeStreamStats(ctx context.Context, node string, aliveSince time.Time) ([]NodeStreamPlayers, error) {
	var out []NodeStreamPlayers
	err := s.db(ctx).Table("stream_stats").
		Select("applications.name AS app, streams.name AS name, stream_stats.players").
		Joins("JOIN streams ON streams.id = stream_stats.stream_id").
		Joins("JOIN applications ON applications.id = streams.application_id").
		Where("stream_stats.node_name = ? AND stream_stats.updated_at >= ?", node, aliveSince.UTC()).
		Order("applications.name").Order("streams.name").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("streams of node %s: %w", node, err)
	}
	return out, nil
}
