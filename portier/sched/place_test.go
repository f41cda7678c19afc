package sched

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portier/portier/models"
)

func TestPlaceTasks(t *testing.T) {
	desc := func(cost int, labels map[string]string) models.RawJSON {
		return models.MustJSON(map[string]any{"cost": cost, "labels": labels})
	}
	nodes := []models.SchedNode{
		{Name: "a", Capacity: 4, Used: 3},
		{Name: "b", Capacity: 8, Used: 2, Labels: models.Labels{"gpu": "yes"}},
		{Name: "c", Capacity: 6, Used: 0},
	}
	pending := []models.SchedTask{
		{ID: 1, Description: desc(2, nil)},                             // b (6 free) vs c (6 free): tie → name b
		{ID: 2, Description: desc(2, nil)},                             // c has 6, b has 4 → c
		{ID: 3, Description: desc(1, map[string]string{"gpu": "yes"})}, // only b
		{ID: 4, Description: desc(9, nil)},                             // fits nowhere
		{ID: 5, Description: desc(1, map[string]string{"gpu": "no"})},  // no node has the label
		{ID: 6, Description: models.RawJSON(`{}`)},                     // cost 1 by default → c (4 free) over b (3)
	}
	got := placeTasks(nodes, pending)
	want := []models.PlaceDecision{
		{TaskID: 1, Node: "b"},
		{TaskID: 2, Node: "c"},
		{TaskID: 3, Node: "b"},
		{TaskID: 4, Reason: "no concierge with 9 free capacity (largest free: 4)"},
		{TaskID: 5, Reason: "no live concierge has the labels gpu=no"},
		{TaskID: 6, Node: "c"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("placement\n got %+v\nwant %+v", got, want)
	}
	if d := placeTasks(nil, pending[:1]); d[0].Node != "" || !strings.Contains(d[0].Reason, "no live concierge") {
		t.Fatalf("no nodes: %+v", d)
	}
}
