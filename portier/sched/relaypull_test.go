package sched

import (
	"reflect"
	"testing"

	"github.com/portier/portier/models"
)

func TestPlaceRelayPulls(t *testing.T) {
	tasks := func(ids ...int64) []models.SchedTask {
		out := make([]models.SchedTask, len(ids))
		for i, id := range ids {
			out[i] = models.SchedTask{ID: id}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		origins []models.PullOrigin
		tasks   []models.SchedTask
		want    []string // node per task, "" = stays
	}{
		{"no origin: stays pending", nil, tasks(1, 2), []string{"", ""}},
		{"fewest pulls first", []models.PullOrigin{{Name: "a", Pulls: 2}, {Name: "b", Pulls: 0}}, tasks(1), []string{"b"}},
		{"spread within a round", []models.PullOrigin{{Name: "a"}, {Name: "b"}}, tasks(1, 2, 3, 4), []string{"a", "b", "a", "b"}},
		{"fill the emptier one first", []models.PullOrigin{{Name: "a", Pulls: 3}, {Name: "b", Pulls: 1}}, tasks(1, 2, 3), []string{"b", "b", "a"}},
		{"then fewer connections", []models.PullOrigin{{Name: "a", Connections: 9}, {Name: "b", Connections: 1}}, tasks(1), []string{"b"}},
		{"then name", []models.PullOrigin{{Name: "b"}, {Name: "a"}}, tasks(1), []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := placeRelayPulls(tc.origins, tc.tasks)
			nodes := make([]string, len(got))
			for i, d := range got {
				if d.TaskID != tc.tasks[i].ID {
					t.Fatalf("decision %d is for task %d, want %d", i, d.TaskID, tc.tasks[i].ID)
				}
				nodes[i] = d.Node
			}
			if !reflect.DeepEqual(nodes, tc.want) {
				t.Fatalf("placed on %q, want %q", nodes, tc.want)
			}
		})
	}
}
