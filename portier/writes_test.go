package portier

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
)

// The REST API and the UI make the same change through the same write path
// (portier/core), so they record the same audit event: same action, actor
// and details. (Before core, a task config update recorded only the version
// from the API and name, enabled and version from the UI; a stream update
// recorded the API's raw request with nulls.)
func TestAPIAndUIRecordTheSameAuditEvents(t *testing.T) {
	e := newUIEnv(t)
	ctx := context.Background()
	tok, _, err := e.store.CreateToken(ctx, e.users["op1"].ID, "t", []string{"read", "write"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req := httptest.NewRequest(method, "/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.ctl.Handler().ServeHTTP(w, req)
		if w.Code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, w.Code, w.Body.String(), want)
		}
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return out
	}
	ui := e.login("op1")
	submit := func(path string, form url.Values) {
		t.Helper()
		if res, doc := ui.submit(path, form); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, doc.Find("main").Text())
		}
	}
	last := func(action, object string) models.AuditEvent {
		t.Helper()
		list, _, err := e.store.ListAudit(ctx, models.AuditFilter{Action: action, Object: object, Limit: 1})
		if err != nil || len(list) != 1 {
			t.Fatalf("audit %s %s: %v, %d events", action, object, err, len(list))
		}
		return list[0]
	}
	details := func(ev models.AuditEvent) map[string]any {
		var m map[string]any
		json.Unmarshal(ev.Details, &m)
		return m
	}
	same := func(what string, a, b models.AuditEvent, ignore ...string) {
		t.Helper()
		da, db := details(a), details(b)
		for _, k := range ignore {
			if _, ok := da[k]; !ok {
				t.Errorf("%s: the API's event has no %s: %s", what, k, a.Details)
			}
			if _, ok := db[k]; !ok {
				t.Errorf("%s: the UI's event has no %s: %s", what, k, b.Details)
			}
			delete(da, k)
			delete(db, k)
		}
		if a.Actor != b.Actor || a.Result != b.Result || !reflect.DeepEqual(da, db) {
			t.Errorf("%s: the API recorded %s %s %s, the UI %s %s %s", what, a.Actor, a.Result, a.Details, b.Actor, b.Result, b.Details)
		}
	}

	// Create: one stream each.
	aid := int64(api("POST", "/streams", `{"name":"by-api"}`, http.StatusCreated)["id"].(float64))
	submit("/streams", url.Values{"app": {"live"}, "name": {"by-ui"}})
	list, _, _ := e.store.ListStreams(ctx, models.StreamFilter{App: "live"})
	var uid int64
	for _, st := range list {
		if st.Name == "by-ui" {
			uid = st.ID
		}
	}
	same("stream.create", last("stream.create", models.StreamObject(aid)), last("stream.create", models.StreamObject(uid)), "name")

	// A record config each, then the same update.
	api("POST", "/streams/"+strconv.FormatInt(aid, 10)+"/task-configs", `{"type":"record","name":"rec","segment_seconds":60,"format":"mp4"}`, http.StatusCreated)
	submit("/streams/"+uiID(uid)+"/configs", url.Values{"type": {"record"}, "name": {"rec"}, "segment_seconds": {"60"}, "record_format": {"mp4"}, "enabled": {"true"}})
	acfg, _ := e.store.ListTaskConfigs(ctx, aid)
	ucfg, _ := e.store.ListTaskConfigs(ctx, uid)
	aobj, uobj := core.ConfigObject(aid, acfg[0].ID), core.ConfigObject(uid, ucfg[0].ID)
	same("task_config.create", last("task_config.create", aobj), last("task_config.create", uobj))

	api("PATCH", "/streams/"+strconv.FormatInt(aid, 10)+"/task-configs/"+strconv.FormatInt(acfg[0].ID, 10), `{"name":"rec2","enabled":false}`, http.StatusOK)
	submit("/streams/"+uiID(uid)+"/configs/"+uiID(ucfg[0].ID), url.Values{"name": {"rec2"}, "segment_seconds": {"60"}, "record_format": {"mp4"}})
	au, uu := last("task_config.update", aobj), last("task_config.update", uobj)
	same("task_config.update", au, uu)
	if d := details(au); d["name"] != "rec2" || d["enabled"] != false || d["version"] != float64(2) {
		t.Errorf("task_config.update details %s, want name, enabled and version", au.Details)
	}

	// Disable each stream.
	api("PATCH", "/streams/"+strconv.FormatInt(aid, 10), `{"enabled":false}`, http.StatusOK)
	submit("/streams/"+uiID(uid)+"/enabled", url.Values{"enabled": {"false"}})
	same("stream.update", last("stream.update", models.StreamObject(aid)), last("stream.update", models.StreamObject(uid)))

	// Rotate, delete the config, delete the stream.
	api("POST", "/streams/"+strconv.FormatInt(aid, 10)+"/rotate-key", ``, http.StatusOK)
	submit("/streams/"+uiID(uid)+"/rotate-key", nil)
	same("stream.rotate_key", last("stream.rotate_key", models.StreamObject(aid)), last("stream.rotate_key", models.StreamObject(uid)))
	api("DELETE", "/streams/"+strconv.FormatInt(aid, 10)+"/task-configs/"+strconv.FormatInt(acfg[0].ID, 10), ``, http.StatusNoContent)
	submit("/streams/"+uiID(uid)+"/configs/"+uiID(ucfg[0].ID)+"/delete", nil)
	same("task_config.delete", last("task_config.delete", aobj), last("task_config.delete", uobj))
	api("DELETE", "/streams/"+strconv.FormatInt(aid, 10), ``, http.StatusNoContent)
	submit("/streams/"+uiID(uid)+"/delete", nil)
	same("stream.delete", last("stream.delete", models.StreamObject(aid)), last("stream.delete", models.StreamObject(uid)), "name")
}
