package sched

import (
	"fmt"
	"sort"
	"strings"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
)

// placeTasks is the scheduler's pure placement rule ("best availability"):
// tasks are taken in id order; each goes to the concierge whose labels
// include every label the task requires and that has the most free capacity
// (capacity minus the cost of the tasks it holds, including those placed in
// this round, all in taskcost units), ties broken by name. A task never goes over capacity: if no
// matching concierge has room it stays pending with a reason that says why.
func placeTasks(nodes []models.SchedNode, pending []models.SchedTask) []models.PlaceDecision {
	free := make([]int, len(nodes))
	for i, n := range nodes {
		free[i] = n.Capacity - n.Used
	}
	out := make([]models.PlaceDecision, 0, len(pending))
	for _, t := range pending {
		p := models.PlacementOf(t.Description)
		best, largest, matching := -1, 0, 0
		for i, n := range nodes {
			if !labelsMatch(n.Labels, p.Labels) {
				continue
			}
			if matching == 0 || free[i] > largest {
				largest = free[i]
			}
			matching++
			if free[i] < p.Cost {
				continue
			}
			if best < 0 || free[i] > free[best] || (free[i] == free[best] && n.Name < nodes[best].Name) {
				best = i
			}
		}
		d := models.PlaceDecision{TaskID: t.ID}
		switch {
		case best >= 0:
			d.Node = nodes[best].Name
			free[best] -= p.Cost
		case len(nodes) == 0:
			d.Reason = "no live concierge: start `portier concierge` on a worker host"
		case matching == 0:
			d.Reason = "no live concierge has the labels " + formatLabels(p.Labels)
		default:
			d.Reason = fmt.Sprintf("no concierge with enough free capacity: needs %s cores, largest free %s",
				taskcost.Format(p.Cost), taskcost.Format(max(largest, 0)))
		}
		out = append(out, d)
	}
	return out
}

func labelsMatch(have models.Labels, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
