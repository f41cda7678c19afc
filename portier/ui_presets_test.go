package portier

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// TestUIPresetsServerSide: the preset menu as the server reads it. On
// Save, a chosen preset fills an empty target or ladder; "Apply preset"
// on the edit form replaces the target and saves nothing; an unknown
// preset is custom (nothing filled, no error page); the edit form selects
// the preset its target belongs to and shows the key's shape.
func TestUIPresetsServerSide(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	st := e.stream("op1", "presets")
	c := e.login("op1")
	base := "/streams/" + uiID(st.ID)
	if res, doc := c.submit(base+"/configs", url.Values{"type": {"restream"}, "name": {"tw"}, "enabled": {"true"},
		"preset": {"twitch"}, "target": {""}, "key": {"live_123456_AbC"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save with the Twitch preset and no target: %d %q", res.StatusCode, doc.Find("main").Text())
	}
	if res, doc := c.submit(base+"/configs", url.Values{"type": {"hls"}, "name": {"low"}, "enabled": {"true"},
		"preset": {"480p"}, "renditions": {""}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save with the 480p ladder and no renditions: %d %q", res.StatusCode, doc.Find("main").Text())
	}
	cfgs, err := e.store.ListTaskConfigs(ctx, st.ID)
	if err != nil || len(cfgs) != 2 {
		t.Fatalf("configs %v %v", cfgs, err)
	}
	byName := map[string]int{}
	for i, cf := range cfgs {
		byName[cf.Name] = i
	}
	tw := cfgs[byName["tw"]]
	if sp, _ := tw.Restream(); sp.Target != "rtmp://live.twitch.tv/app" || sp.Key != "live_123456_AbC" {
		t.Fatalf("Twitch config %+v", sp)
	}
	if sp, _ := cfgs[byName["low"]].HLS(); len(sp.Renditions) != 2 || sp.Renditions[0].Width != 854 || sp.Renditions[1].Height != 360 {
		t.Fatalf("480p ladder config %+v", sp)
	}

	edit := base + "/configs/" + uiID(tw.ID)
	_, doc := c.get(edit, http.StatusOK)
	if v, _ := doc.Find(`#cfg-preset option[selected]`).Attr("value"); v != "twitch" {
		t.Errorf("edit form selects preset %q, want twitch", v)
	}
	if ph, _ := doc.Find("#cfg-key").Attr("placeholder"); ph != "live_…" {
		t.Errorf("key placeholder %q", ph)
	}
	// Apply on the edit form: the target changes in the form only.
	res, doc := c.submit(edit, url.Values{"name": {"tw"}, "enabled": {"true"}, "preset": {"youtube"}, "apply": {"preset"},
		"target": {"rtmp://live.twitch.tv/app"}, "key": {"live_123456_AbC"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("apply on the edit form: %d", res.StatusCode)
	}
	if v, _ := doc.Find("#cfg-target").Attr("value"); v != "rtmp://a.rtmp.youtube.com/live2" {
		t.Errorf("target after Apply %q", v)
	}
	if ph, _ := doc.Find("#cfg-key").Attr("placeholder"); ph != "xxxx-xxxx-xxxx-xxxx-xxxx" {
		t.Errorf("key placeholder after Apply %q", ph)
	}
	if got, _ := e.store.TaskConfigByID(ctx, st.ID, tw.ID); got.Version != tw.Version {
		t.Error("Apply preset saved the config")
	}
	// An unknown preset fills nothing.
	res, doc = c.submit(base+"/configs", url.Values{"type": {"restream"}, "name": {"x"}, "preset": {"nosuch"}, "apply": {"preset"}, "target": {"rtmp://relay.example/live"}})
	if v, _ := doc.Find("#cfg-target").Attr("value"); res.StatusCode != http.StatusOK || v != "rtmp://relay.example/live" {
		t.Errorf("unknown preset: %d, target %q", res.StatusCode, v)
	}
}
