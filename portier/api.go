package portier

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
)

// MaxBodyBytes is the largest JSON body the API accepts.
const MaxBodyBytes = 1 << 20

// Pagination limits of list endpoints.
const (
	defaultPageLimit = 50
	maxPageLimit     = 100
	// maxPageOffset bounds ?offset= so that offset+limit can never
	// overflow an int (a 64-bit offset near MaxInt64 once panicked the
	// recordings list) and the database never sees an absurd OFFSET.
	maxPageOffset = 1_000_000_000
)

// registerAPI registers the REST API. Every route needs a principal
// (s.authenticate); changes need the write scope and a non-viewer role; user
// administration needs the admin role and scope. Ownership of streams is
// checked in the handlers (s.loadStream).
func (s *Server) registerAPI(g *gin.RouterGroup) {
	g.GET("/openapi.json", s.serveOpenAPI)
	g.Use(s.limitBody, s.authenticate)

	g.GET("/me", s.apiMe)

	g.GET("/applications", s.apiListApps)
	g.POST("/applications", s.requireAdmin, s.apiCreateApp)
	g.DELETE("/applications/:id", s.requireAdmin, s.apiDeleteApp)

	g.GET("/streams", s.apiListStreams)
	g.POST("/streams", s.requireWriter, s.apiCreateStream)
	g.GET("/streams/:id", s.apiGetStream)
	g.PATCH("/streams/:id", s.requireWriter, s.apiPatchStream)
	g.DELETE("/streams/:id", s.requireWriter, s.apiDeleteStream)
	g.POST("/streams/:id/rotate-key", s.requireWriter, s.apiRotateKey)

	g.GET("/streams/:id/recordings", s.apiListRecordings)
	g.GET("/streams/:id/task-configs", s.apiListTaskConfigs)
	g.POST("/streams/:id/task-configs", s.requireWriter, s.apiCreateTaskConfig)
	g.GET("/streams/:id/task-configs/:cid", s.apiGetTaskConfig)
	g.PATCH("/streams/:id/task-configs/:cid", s.requireWriter, s.apiPatchTaskConfig)
	g.DELETE("/streams/:id/task-configs/:cid", s.requireWriter, s.apiDeleteTaskConfig)

	g.GET("/tasks", s.apiListTasks)
	g.GET("/tasks/:id", s.apiGetTask)
	g.POST("/tasks/:id/restart", s.requireWriter, s.apiRestartTask)

	g.GET("/nodes", s.apiListNodes)
	g.GET("/audit", s.apiListAudit)

	g.GET("/users", s.requireAdmin, s.apiListUsers)
	g.POST("/users", s.requireAdmin, s.apiCreateUser)
	g.GET("/users/:id", s.requireAdmin, s.apiGetUser)
	g.PATCH("/users/:id", s.requireAdmin, s.apiPatchUser)

	g.GET("/tokens", s.apiListTokens)
	g.POST("/tokens", s.apiCreateToken)
	g.DELETE("/tokens/:id", s.apiRevokeToken)
}

// limitBody caps request bodies at MaxBodyBytes.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		s.fail(c, apiErr(http.StatusRequestEntityTooLarge, codeTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)))
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
		return nil, apiErr(http.StatusRequestEntityTooLarge, codeTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
	}
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, codeMalformed, "", "could not read the body: "+err.Error())
	}
	return b, nil
}

// decodeStrict decodes one JSON object from b into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return apiErr(http.StatusBadRequest, codeMalformed, "", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				return apiErr(http.StatusBadRequest, codeMalformed, "", "the body must be a JSON object, not a JSON "+ute.Value)
			}
			return errInvalid(ute.Field, fmt.Sprintf("%s must be a %s, not a JSON %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value))
		}
		msg := err.Error()
		if f, ok := cutPrefix(msg, "json: unknown field "); ok {
			return errInvalid(trimQuotes(f), "unknown field "+f)
		}
		return apiErr(http.StatusBadRequest, codeMalformed, "", "malformed JSON: "+msg)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, codeMalformed, "", "malformed JSON: data after the object")
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
		return 0, errInvalid(name, name+" must be a positive integer")
	}
	return id, nil
}

// page is the pagination of a list request.
type page struct{ Limit, Offset int }

// pageParams reads ?limit (1-100, default 50) and ?offset (0-1e9): a value
// out of range or not a decimal integer is the client's mistake (400).
func pageParams(c *gin.Context) (page, error) {
	p := page{Limit: defaultPageLimit}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := parseBounded(v, 1, maxPageLimit)
		if err != nil {
			return p, errInvalid("limit", fmt.Sprintf("limit must be an integer between 1 and %d", maxPageLimit))
		}
		p.Limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, err := parseOffset(v)
		if err != nil {
			return p, errInvalid("offset", err.Error())
		}
		p.Offset = n
	}
	return p, nil
}

// parseOffset parses a paging offset (see maxPageOffset).
func parseOffset(v string) (int, error) {
	n, err := parseBounded(v, 0, maxPageOffset)
	if err != nil {
		return 0, fmt.Errorf("offset must be an integer between 0 and %d", maxPageOffset)
	}
	return n, nil
}

// parseBounded parses a decimal integer in [lo, hi]; signs other than a
// leading '-' for negatives, spaces and overflow are errors.
func parseBounded(v string, lo, hi int) (int, error) {
	if v == "" || len(v) > 20 || v[0] == '+' {
		return 0, errors.New("not an integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, errors.New("out of range")
	}
	return int(n), nil
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

func listOf(items any, total int64, p page, n int) listBody {
	b := listBody{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset}
	if int64(p.Offset+n) < total {
		next := p.Offset + n
		b.NextOffset = &next
	}
	return b
}
