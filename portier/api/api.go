package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// MaxBodyBytes is the largest JSON body the API accepts.
const MaxBodyBytes = 1 << 20

// Register adds the REST API to g (/api/v1). Every route needs a
// principal (auth.Authenticator.Authenticate); changes need the write scope
// and a non-viewer role; user administration needs the admin role and
// scope. Ownership of streams is checked in the handlers (s.loadStream).
func (s *Server) Register(g *gin.RouterGroup) {
	g.GET("/openapi.json", s.serveOpenAPI)
	g.Use(s.limitBody, s.auth.Authenticate)

	g.GET("/me", s.apiMe)

	g.GET("/applications", s.apiListApps)
	g.POST("/applications", s.auth.RequireAdmin, s.apiCreateApp)
	g.DELETE("/applications/:id", s.auth.RequireAdmin, s.apiDeleteApp)

	g.GET("/streams", s.apiListStreams)
	g.POST("/streams", s.auth.RequireWriter, s.apiCreateStream)
	g.GET("/streams/:id", s.apiGetStream)
	g.PATCH("/streams/:id", s.auth.RequireWriter, s.apiPatchStream)
	g.DELETE("/streams/:id", s.auth.RequireWriter, s.apiDeleteStream)
	g.POST("/streams/:id/rotate-key", s.auth.RequireWriter, s.apiRotateKey)
	g.POST("/streams/:id/kick", s.auth.RequireWriter, s.apiKickPublisher)

	g.GET("/streams/:id/recordings", s.apiListRecordings)
	g.GET("/streams/:id/recordings/:name", s.apiGetRecording)
	g.DELETE("/streams/:id/recordings/:name", s.auth.RequireWriter, s.apiDeleteRecording)
	g.GET("/streams/:id/task-configs", s.apiListTaskConfigs)
	g.POST("/streams/:id/task-configs", s.auth.RequireWriter, s.apiCreateTaskConfig)
	g.GET("/streams/:id/task-configs/:cid", s.apiGetTaskConfig)
	g.PATCH("/streams/:id/task-configs/:cid", s.auth.RequireWriter, s.apiPatchTaskConfig)
	g.DELETE("/streams/:id/task-configs/:cid", s.auth.RequireWriter, s.apiDeleteTaskConfig)

	g.GET("/presets", s.apiPresets)

	g.GET("/tasks", s.apiListTasks)
	g.GET("/tasks/:id", s.apiGetTask)
	g.POST("/tasks/:id/restart", s.auth.RequireWriter, s.apiRestartTask)

	g.GET("/nodes", s.apiListNodes)
	g.POST("/nodes/:name/drain", s.auth.RequireAdmin, s.apiDrainNode)
	g.POST("/nodes/:name/resume", s.auth.RequireAdmin, s.apiResumeNode)
	g.DELETE("/nodes/:name", s.auth.RequireAdmin, s.apiRemoveNode)
	g.GET("/audit", s.apiListAudit)

	g.GET("/users", s.auth.RequireAdmin, s.apiListUsers)
	g.POST("/users", s.auth.RequireAdmin, s.apiCreateUser)
	g.GET("/users/:id", s.auth.RequireAdmin, s.apiGetUser)
	g.PATCH("/users/:id", s.auth.RequireAdmin, s.apiPatchUser)
	g.DELETE("/users/:id", s.auth.RequireAdmin, s.apiDeleteUser)

	g.GET("/webhooks", s.auth.RequireAdmin, s.apiListWebhooks)
	g.POST("/webhooks", s.auth.RequireAdmin, s.apiCreateWebhook)
	g.GET("/webhooks/:id", s.auth.RequireAdmin, s.apiGetWebhook)
	g.PATCH("/webhooks/:id", s.auth.RequireAdmin, s.apiPatchWebhook)
	g.DELETE("/webhooks/:id", s.auth.RequireAdmin, s.apiDeleteWebhook)
	g.GET("/webhooks/:id/deliveries", s.auth.RequireAdmin, s.apiListWebhookDeliveries)
	g.POST("/webhooks/:id/test", s.auth.RequireAdmin, s.apiTestWebhook)

	g.GET("/tokens", s.apiListTokens)
	g.POST("/tokens", s.apiCreateToken)
	g.DELETE("/tokens/:id", s.apiRevokeToken)
}

// limitBody caps request bodies at MaxBodyBytes.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		s.fail(c, httperr.New(http.StatusRequestEntityTooLarge, httperr.CodeTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	c.Next()
}

// readBody reads the whole (limited) body.
func readBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, httperr.New(http.StatusRequestEntityTooLarge, httperr.CodeTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
	}
	if err != nil {
		return nil, httperr.New(http.StatusBadRequest, httperr.CodeMalformed, "", "could not read the body: "+err.Error())
	}
	return b, nil
}

// decodeStrict decodes one JSON object from b into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return httperr.New(http.StatusBadRequest, httperr.CodeMalformed, "", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				return httperr.New(http.StatusBadRequest, httperr.CodeMalformed, "", "the body must be a JSON object, not a JSON "+ute.Value)
			}
			return httperr.Invalid(ute.Field, fmt.Sprintf("%s must be a %s, not a JSON %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value))
		}
		msg := err.Error()
		if f, ok := cutPrefix(msg, "json: unknown field "); ok {
			return httperr.Invalid(trimQuotes(f), "unknown field "+f)
		}
		return httperr.New(http.StatusBadRequest, httperr.CodeMalformed, "", "malformed JSON: "+msg)
	}
	if dec.More() {
		return httperr.New(http.StatusBadRequest, httperr.CodeMalformed, "", "malformed JSON: data after the object")
	}
	return nil
}

// bindJSON reads the body into v (see decodeStrict).
func bindJSON(c *gin.Context, v any) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch {
	case k == "bool":
		return "boolean"
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "slice", k == "array":
		return "list"
	case k == "struct", k == "map", k == "ptr":
		return "object"
	}
	return k
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// idParam parses a numeric path parameter.
func idParam(c *gin.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, httperr.Invalid(name, name+" must be a positive integer")
	}
	return id, nil
}

// listBody is the shape of every list response. NextOffset is absent on the
// last page.
type listBody struct {
	Items      any   `json:"items"`
	Total      int64 `json:"total"`
	Limit      int   `json:"limit"`
	Offset     int   `json:"offset"`
	NextOffset *int  `json:"next_offset,omitempty"`
}

func listOf(items any, total int64, p paging.Page, n int) listBody {
	b := listBody{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset}
	if int64(p.Offset+n) < total {
		next := p.Offset + n
		b.NextOffset = &next
	}
	return b
}
