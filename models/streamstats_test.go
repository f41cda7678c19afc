package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/portier/portier/models"
	"github.com/portier/portier/models/modelstest"
)

func TestStreamStatsViewersAndCodecInfo(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			now := time.Now().UTC().Truncate(time.Millisecond)
			alive := now.Add(-3 * time.Second)
			if _, err := s.AddOrigin(ctx, st.ID, "o1", now, true, nil); err != nil {
				t.Fatal(err)
			}
			codec := models.StreamCodec{VideoCodec: "h264", Width: 640, Height: 360, FPS: 25,
				AudioCodec: "aac", SampleRate: 44100, Channels: 2}
			// Two edges pull the stream (one player each at the origin)
			// and have 3 and 2 players; the origin has 1 direct player.
			for _, e := range []struct {
				node    string
				players int
			}{{"e1", 3}, {"e2", 2}} {
				err := s.UpdateNodeStreamStats(ctx, e.node, models.NodeRoleEdge, []models.StreamStatReport{
					{App: "live", Name: "show", Publisher: true, Players: e.players, BitrateIn: 900_000, Codec: codec},
					{App: "live", Name: "unknown", Publisher: true, Players: 9},
				}, now, alive)
				if err != nil {
					t.Fatal(err)
				}
			}
			err := s.UpdateNodeStreamStats(ctx, "o1", models.NodeRoleOrigin, []models.StreamStatReport{
				{App: "live", Name: "show", Publisher: true, Players: 3, BitrateIn: 1_000_000, Codec: codec},
			}, now, alive)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.StreamByID(ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			ci := models.ParseLiveCodecInfo(got.CodecInfo)
			// 3 + 2 on the edges, 3 at the origin of which 2 are the edges.
			if ci.Viewers != 6 || ci.StreamCodec != codec || got.Bitrate != 1_000_000 {
				t.Fatalf("codec info %s (%+v), bitrate %d; want 6 viewers, %+v, 1000000", got.CodecInfo, ci, got.Bitrate, codec)
			}
			rows, err := s.StreamStats(ctx, st.ID, alive)
			if err != nil || len(rows) != 3 || rows[0].NodeName != "e1" || rows[2].NodeName != "o1" || rows[2].Players != 3 {
				t.Fatalf("stats rows %+v, %v", rows, err)
			}

			// An edge that stops reporting the stream loses its row at
			// its next heartbeat; the next origin heartbeat counts without it.
			later := now.Add(time.Second)
			if err := s.UpdateNodeStreamStats(ctx, "e2", models.NodeRoleEdge, nil, later, alive); err != nil {
				t.Fatal(err)
			}
			err = s.UpdateNodeStreamStats(ctx, "o1", models.NodeRoleOrigin, []models.StreamStatReport{
				{App: "live", Name: "show", Publisher: true, Players: 2, BitrateIn: 1_100_000, Codec: codec},
			}, later, alive)
			if err != nil {
				t.Fatal(err)
			}
			got, _ = s.StreamByID(ctx, st.ID)
			if ci := models.ParseLiveCodecInfo(got.CodecInfo); ci.Viewers != 4 || got.Bitrate != 1_100_000 {
				t.Fatalf("after e2 left: %s bitrate %d, want 4 viewers (3 on e1 + 2 at origin - 1 pull)", got.CodecInfo, got.Bitrate)
			}

			// An origin that does not hold the publish does not write the
			// stream's codec info, but its players count.
			err = s.UpdateNodeStreamStats(ctx, "o2", models.NodeRoleOrigin, []models.StreamStatReport{
				{App: "live", Name: "show", Publisher: true, Players: 1, BitrateIn: 5, Codec: models.StreamCodec{VideoCodec: "h265"}},
			}, later, alive)
			if err != nil {
				t.Fatal(err)
			}
			got, _ = s.StreamByID(ctx, st.ID)
			if ci := models.ParseLiveCodecInfo(got.CodecInfo); ci.VideoCodec != "h264" || got.Bitrate != 1_100_000 {
				t.Fatalf("origin without the publish wrote %s bitrate %d", got.CodecInfo, got.Bitrate)
			}

			// Rows of relays that stopped heartbeating are removed.
			n, err := s.RemoveStaleStreamStats(ctx, now)
			if err != nil || n != 0 {
				t.Fatalf("nothing is stale yet: removed %d, %v", n, err)
			}
			n, err = s.RemoveStaleStreamStats(ctx, later)
			if err != nil || n != 1 {
				t.Fatalf("removed %d rows, want 1 (e1, last seen before o1 and o2): %v", n, err)
			}
			if rows, _ := s.StreamStats(ctx, st.ID, alive); len(rows) != 2 || rows[0].NodeName != "o1" {
				t.Fatalf("rows left: %+v", rows)
			}

			since, err := s.LiveSince(ctx, []int64{st.ID, st.ID + 1000})
			if err != nil || len(since) != 1 || !since[st.ID].Equal(now) {
				t.Fatalf("live since %v, %v; want %v", since, err, now)
			}
		})
	}
}

func TestStreamOfflineClearsCodecInfo(t *testing.T) {
	for _, n := range modelstest.Stores(t) {
		t.Run(n.Name, func(t *testing.T) {
			s, ctx := n.Store, context.Background()
			st := liveFixture(t, s)
			now := time.Now().UTC()
			if _, err := s.AddOrigin(ctx, st.ID, "o1", now, true, nil); err != nil {
				t.Fatal(err)
			}
			err := s.UpdateNodeStreamStats(ctx, "o1", models.NodeRoleOrigin, []models.StreamStatReport{
				{App: "live", Name: "show", Publisher: true, Players: 1, BitrateIn: 500_000, Codec: models.StreamCodec{VideoCodec: "h264"}},
			}, now, now.Add(-3*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if off, err := s.RemoveOrigin(ctx, st.ID, "o1", nil); err != nil || !off {
				t.Fatalf("remove origin: offline=%v %v", off, err)
			}
			got, err := s.StreamByID(ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if ci := models.ParseLiveCodecInfo(got.CodecInfo); ci.VideoCodec != "" || ci.Viewers != 0 || got.Bitrate != 0 {
				t.Fatalf("offline stream keeps codec info %s, bitrate %d", got.CodecInfo, got.Bitrate)
			}
		})
	}
}
