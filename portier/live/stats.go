package live

import (
	"context"

	"github.com/portier/portier/models"
)

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
