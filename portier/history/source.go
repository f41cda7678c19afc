package history

import (
	"context"
	"encoding/json"
	"time"

	"github.com/portier/portier/models"
)

// StoreSource reads the figures from the store: each live stream's bitrate
// and viewers (the relays' players as the heartbeats counted them, plus
// hlsViewers' count of its HLS viewers, keyed "app/name"; nil: none), and
// the cluster's ingest (what the origins receive) and egress (what every
// relay and CDN edge sends) from the nodes alive since aliveSince().
func StoreSource(st *models.Store, aliveSince func() time.Time, hlsViewers func() map[string]int) Source {
	return func(ctx context.Context) (Snapshot, error) {
		live := true
		streams, _, err := st.ListStreams(ctx, models.StreamFilter{Live: &live})
		if err != nil {
			return Snapshot{}, err
		}
		nodes, err := st.ListNodes(ctx, "")
		if err != nil {
			return Snapshot{}, err
		}
		var hls map[string]int
		if hlsViewers != nil {
			hls = hlsViewers()
		}
		snap := Snapshot{Streams: make(map[int64]Point, len(streams))}
		for _, s := range streams {
			var ci models.LiveCodecInfo
			if len(s.CodecInfo) > 0 {
				_ = json.Unmarshal(s.CodecInfo, &ci) // a stream without stats yet has no viewers
			}
			v := ci.Viewers + hls[s.Application.Name+"/"+s.Name]
			snap.Streams[s.ID] = Point{BitrateIn: s.Bitrate, Viewers: v}
			snap.Totals.Viewers += v
		}
		since := aliveSince()
		for _, n := range nodes {
			if n.LastHeartbeat == nil || n.LastHeartbeat.Before(since) {
				continue
			}
			switch n.Role {
			case models.NodeRoleOrigin:
				snap.Totals.BitrateIn += n.Load.BitrateIn
				snap.Totals.BitrateOut += n.Load.BitrateOut
			case models.NodeRoleEdge, models.NodeRoleCDNEdge:
				snap.Totals.BitrateOut += n.Load.BitrateOut
			}
		}
		return snap, nil
	}
}
