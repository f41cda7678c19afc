package sched

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portier/portier/internal/taskcost"
	"github.com/portier/portier/models"
	"github.com/portier/portier/web/i18n"
)

func TestPlaceTasks(t *testing.T) {
	desc := func(cost int, labels map[string]string) models.RawJSON {
		return models.MustJSON(map[string]any{"cost": cost, "labels": labels})
	}
	const core = taskcost.PerCore
	nodes := []models.SchedNode{
		{Name: "a", Capacity: 4 * core, Used: 3 * core},
		{Name: "b", Capacity: 8 * core, Used: 2 * core, Labels: models.Labels{"gpu": "yes"}},
		{Name: "c", Capacity: 6 * core, Used: 0},
	}
	pending := []models.SchedTask{
		{ID: 1, Description: desc(2*core, nil)},                             // b (6 free) vs c (6 free): tie → name b
		{ID: 2, Description: desc(2*core, nil)},                             // c has 6, b has 4 → c
		{ID: 3, Description: desc(1*core, map[string]string{"gpu": "yes"})}, // only b
		{ID: 4, Description: desc(9*core, nil)},                             // fits nowhere
		{ID: 5, Description: desc(1*core, map[string]string{"gpu": "no"})},  // no node has the label
		{ID: 6, Description: models.RawJSON(`{}`)},                          // cost 1 (0.01 core) by default → c (4 free) over b (3)
	}
	got := placeTasks(nodes, pending)
	want := []models.PlaceDecision{
		{TaskID: 1, Node: "b"},
		{TaskID: 2, Node: "c"},
		{TaskID: 3, Node: "b"},
		{TaskID: 4, Reason: "no concierge with enough free capacity: needs 9.00 cores, largest free 4.00"},
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

// TestPlaceCopyTasks: a 2-core concierge takes 2 cores of copy tasks (far
// more than 2 of them), and an encode that needs a core waits with a
// reason in cores once less than a core is free.
func TestPlaceCopyTasks(t *testing.T) {
	nodes := []models.SchedNode{{Name: "small", Capacity: taskcost.FromCores(2)}}
	copyDesc := models.MustJSON(map[string]any{"cost": taskcost.Copy})
	encode := models.MustJSON(map[string]any{"cost": taskcost.Encode})
	var pending []models.SchedTask
	n := taskcost.FromCores(2) / taskcost.Copy
	for i := range n + 1 {
		pending = append(pending, models.SchedTask{ID: int64(i + 1), Description: copyDesc})
	}
	got := placeTasks(nodes, pending)
	placed := 0
	for _, d := range got {
		if d.Node == "small" {
			placed++
		}
	}
	if placed != n || n <= 2 || got[n].Node != "" {
		t.Fatalf("%d of %d copy tasks placed on 2 cores, want %d (> 2): last %+v", placed, n+1, n, got[n])
	}
	want := fmt.Sprintf("no concierge with enough free capacity: needs %s cores, largest free 0.00", taskcost.Format(taskcost.Copy))
	if got[n].Reason != want {
		t.Fatalf("reason %q, want %q", got[n].Reason, want)
	}
	// The UI shows it in German too (the catalogue knows its pattern).
	de := fmt.Sprintf("kein Concierge mit genug freier Kapazität: braucht %s Kerne, größte freie 0.00", taskcost.Format(taskcost.Copy))
	if tr := i18n.DE.Reason(got[n].Reason); tr != de {
		t.Fatalf("German reason %q, want %q", tr, de)
	}

	// Half a core used: an encode (a core) does not fit, copies still do.
	nodes[0].Used = taskcost.FromCores(2) - taskcost.PerCore/2
	got = placeTasks(nodes, []models.SchedTask{{ID: 1, Description: encode}, {ID: 2, Description: copyDesc}})
	if got[0].Node != "" || got[0].Reason != "no concierge with enough free capacity: needs 1.00 cores, largest free 0.50" || got[1].Node != "small" {
		t.Fatalf("encode on half a free core: %+v", got)
	}
}
