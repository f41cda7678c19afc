package sched

import (
	"context"

	"github.com/portier/portier/models"
)

// placeRelayPulls is the pure rule that gives RTSP pull tasks to origins
// (models.PlaceRelayPulls): tasks in id order, each to the origin that
// holds the fewest pulls (counting those placed in this round), then the
// one with the fewest connections, then by name. Origins have no pull
// capacity: a pull costs one RTSP session and the publish it feeds. With
// no origin a task stays where it is (pending: the concierge placement
// may run it with ffmpeg).
func placeRelayPulls(origins []models.PullOrigin, tasks []models.SchedTask) []models.PlaceDecision {
	held := make([]int, len(origins))
	for i, o := range origins {
		held[i] = o.Pulls
	}
	out := make([]models.PlaceDecision, 0, len(tasks))
	for _, t := range tasks {
		d := models.PlaceDecision{TaskID: t.ID}
		best := -1
		for i, o := range origins {
			if best < 0 || less(held[i], o, held[best], origins[best]) {
				best = i
			}
		}
		if best >= 0 {
			d.Node = origins[best].Name
			held[best]++
		}
		out = append(out, d)
	}
	return out
}

// less orders origins for a new pull: fewer pulls, fewer connections, name.
func less(pa int, a models.PullOrigin, pb int, b models.PullOrigin) bool {
	if pa != pb {
		return pa < pb
	}
	if a.Connections != b.Connections {
		return a.Connections < b.Connections
	}
	return a.Name < b.Name
}

// placeRelayPullsRound gives RTSP pull tasks to alive origins that can pull
// (before the concierge placement, which would run them with ffmpeg).
func (sc *Scheduler) placeRelayPullsRound(ctx context.Context) {
	now := sc.Now()
	got, err := sc.st.PlaceRelayPulls(ctx, now, sc.lease, now.Add(-sc.alive), placeRelayPulls)
	if err != nil {
		if ctx.Err() == nil {
			sc.log.Error("relay pull placement failed", "err", err)
		}
		return
	}
	// Origins learn their pulls from their next heartbeat's answer: no
	// long poll to wake.
	for _, a := range got {
		sc.log.Info("RTSP pull assigned to origin", "task", a.TaskID, "node", a.Node, "epoch", a.Epoch)
	}
}
