package live

import (
	"context"

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

// StoreStreamStats replaces node's stream statistics with reports.
func (l *State) StoreStreamStats(ctx context.Context, node string, reports []models.StreamStatReport) error {
	n, err := l.st.NodeByName(ctx, node)
	if err != nil {
		return err
	}
	now := l.clock()
	if err := l.st.UpdateNodeStreamStats(ctx, node, n.Role, reports, now, now.Add(-3*l.hb)); err != nil {
		return err
	}
	if n.Role == models.NodeRoleOrigin {
		l.followTracks(ctx, reports)
	}
	return nil
}
