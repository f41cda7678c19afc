package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// Task configs are flat JSON objects: the common fields (type, name,
// enabled) next to the type-specific ones (target, key, format for restream;
// segment_seconds, format for record; source for pull; renditions and
// segment_seconds for hls). A restream key is a secret: it is never rendered
// back, only key_set and a key_hint.

func taskConfigView(tc *models.TaskConfig) map[string]any {
	v := map[string]any{}
	json.Unmarshal(tc.Spec, &v)
	if k, ok := v["key"].(string); ok {
		delete(v, "key")
		v["key_set"] = k != ""
		if len(k) >= 4 {
			v["key_hint"] = k[:2] + "…"
		}
	}
	v["id"], v["stream_id"], v["type"], v["name"] = tc.ID, tc.StreamID, tc.Type, tc.Name
	v["enabled"], v["version"], v["created_at"], v["updated_at"] = tc.Enabled, tc.Version, tc.CreatedAt.Format(time.RFC3339Nano), tc.UpdatedAt.Format(time.RFC3339Nano)
	return v
}

// splitConfigBody separates the common fields from the type-specific ones.
func splitConfigBody(c *gin.Context) (common map[string]json.RawMessage, spec map[string]json.RawMessage, err error) {
	var all map[string]json.RawMessage
	if err := bindJSON(c, &all); err != nil {
		return nil, nil, err
	}
	common, spec = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for k, v := range all {
		switch k {
		case "type", "name", "enabled":
			common[k] = v
		case "id", "stream_id", "version", "created_at", "updated_at", "key_set", "key_hint":
			return nil, nil, httperr.Invalid(k, k+" is read-only")
		default:
			spec[k] = v
		}
	}
	return common, spec, nil
}

func rawString(m map[string]json.RawMessage, k string) (*string, error) {
	v, ok := m[k]
	if !ok {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, httperr.Invalid(k, k+" must be a string")
	}
	return &s, nil
}

func rawBool(m map[string]json.RawMessage, k string) (*bool, error) {
	v, ok := m[k]
	if !ok {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, httperr.Invalid(k, k+" must be true or false")
	}
	return &b, nil
}

func (s *Server) apiListTaskConfigs(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	list, err := s.p.Store.ListTaskConfigs(c.Request.Context(), st.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]map[string]any, len(list))
	for i := range list {
		out[i] = taskConfigView(&list[i])
	}
	c.JSON(http.StatusOK, listOf(out, int64(len(out)), paging.Page{Limit: len(out)}, len(out)))
}

func (s *Server) apiCreateTaskConfig(c *gin.Context) {
	st, err := s.loadStream(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	common, spec, err := splitConfigBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ, err := rawString(common, "type")
	if err == nil && typ == nil {
		err = httperr.Invalid("type", "type is required: restream, record, pull or hls")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	name, err := rawString(common, "name")
	if err == nil && name == nil {
		err = models.NameError("name")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	enabled, err := rawBool(common, "enabled")
	if err != nil {
		s.fail(c, err)
		return
	}
	specJSON, _ := json.Marshal(spec)
	tc := &models.TaskConfig{Type: *typ, Name: *name, Enabled: enabled == nil || *enabled, Spec: specJSON}
	if err := s.core.CreateTaskConfig(c.Request.Context(), auth.Actor(c), st, tc); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, taskConfigView(tc))
}

func (s *Server) loadTaskConfig(c *gin.Context) (*models.Stream, *models.TaskConfig, error) {
	st, err := s.loadStream(c)
	if err != nil {
		return nil, nil, err
	}
	cid, err := idParam(c, "cid")
	if err != nil {
		return nil, nil, err
	}
	tc, err := s.p.Store.TaskConfigByID(c.Request.Context(), st.ID, cid)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, httperr.NotFound("task config")
	}
	return st, tc, err
}

func (s *Server) apiGetTaskConfig(c *gin.Context) {
	_, tc, err := s.loadTaskConfig(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, taskConfigView(tc))
}

func (s *Server) apiPatchTaskConfig(c *gin.Context) {
	st, tc, err := s.loadTaskConfig(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	common, spec, err := splitConfigBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if typ, err := rawString(common, "type"); err != nil || (typ != nil && *typ != tc.Type) {
		s.fail(c, httperr.Invalid("type", "the type of a task config cannot change; create a new one"))
		return
	}
	up := models.TaskConfigUpdate{}
	if up.Name, err = rawString(common, "name"); err != nil {
		s.fail(c, err)
		return
	}
	if up.Enabled, err = rawBool(common, "enabled"); err != nil {
		s.fail(c, err)
		return
	}
	if len(spec) > 0 {
		// Merge the given fields over the stored spec, so a PATCH of the
		// target keeps the key.
		merged := map[string]json.RawMessage{}
		json.Unmarshal(tc.Spec, &merged)
		for k, v := range spec {
			if string(v) == "null" {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
		up.Spec, _ = json.Marshal(merged)
	}
	out, err := s.core.UpdateTaskConfig(c.Request.Context(), auth.Actor(c), st, tc, up)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, taskConfigView(out))
}

func (s *Server) apiDeleteTaskConfig(c *gin.Context) {
	st, tc, err := s.loadTaskConfig(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.core.DeleteTaskConfig(c.Request.Context(), auth.Actor(c), st, tc); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
