package portier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/core"
)

// APIError is an error with the HTTP status and the JSON body it maps to
// (nodewire.ErrorBody, the error body of every HTTP surface):
// {"error":{"code","message","field","id"}}. id also appears in the log line.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	ID      string `json:"id,omitempty"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// apiErr builds an APIError.
func apiErr(status int, code, field, msg string) *APIError {
	return &APIError{Status: status, Code: code, Field: field, Message: msg}
}

// Error codes of the REST API.
const (
	codeInvalid      = "invalid"
	codeMalformed    = "malformed_json"
	codeTooLarge     = "body_too_large"
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeInternal     = "internal"
)

func errNotFound(what string) *APIError {
	return apiErr(http.StatusNotFound, codeNotFound, "", what+" not found")
}

func errForbidden(msg string) *APIError {
	return apiErr(http.StatusForbidden, codeForbidden, "", msg)
}

func errInvalid(field, msg string) *APIError {
	return apiErr(http.StatusBadRequest, codeInvalid, field, msg)
}

func newErrorID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fail maps err to a status and JSON body, logs it with an error id and aborts.
// Store sentinel errors become 404/409; specification errors 400; anything
// unknown 500 (the client sees only the id, the log has the cause).
func (s *Server) fail(c *gin.Context, err error) {
	var ae *APIError
	var se *models.SpecError
	var ce *core.ConflictError
	switch {
	case errors.As(err, &ae):
		ae = &APIError{Status: ae.Status, Code: ae.Code, Message: ae.Message, Field: ae.Field}
	case errors.As(err, &ce):
		ae = apiErr(http.StatusConflict, codeConflict, ce.Field, ce.Message)
	case errors.As(err, &se):
		ae = errInvalid(se.Field, se.Field+" "+se.Message)
	case errors.Is(err, models.ErrNotFound):
		ae = apiErr(http.StatusNotFound, codeNotFound, "", err.Error())
	case errors.Is(err, models.ErrConflict):
		ae = apiErr(http.StatusConflict, codeConflict, "", err.Error())
	case errors.Is(err, models.ErrInUse):
		ae = apiErr(http.StatusConflict, codeConflict, "", err.Error())
	default:
		ae = apiErr(http.StatusInternalServerError, codeInternal, "", "internal error; the server log has details under this error id")
	}
	ae.ID = newErrorID()
	level := s.log.Info
	if ae.Status >= 500 {
		level = s.log.Error
	}
	level("api error", "id", ae.ID, "status", ae.Status, "code", ae.Code, "method", c.Request.Method,
		"route", c.FullPath(), "err", err.Error())
	c.AbortWithStatusJSON(ae.Status, nodewire.ErrorBody{Error: nodewire.Error{Code: ae.Code, Message: ae.Message, Field: ae.Field, ID: ae.ID}})
}
