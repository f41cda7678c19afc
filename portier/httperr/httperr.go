// Package httperr is the one error body of the control plane's HTTP
// surfaces for people (the REST API, and the web UI's error pages): an
// APIError carries a status, a code, a message, the field at fault and an
// ID that is also logged; Fail maps any error onto one
// (nodewire.ErrorBody: {"error":{"code","message","field","id"}}).
package httperr

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"

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

// New builds an APIError.
func New(status int, code, field, msg string) *APIError {
	return &APIError{Status: status, Code: code, Field: field, Message: msg}
}

// Error codes of the REST API.
const (
	CodeInvalid      = "invalid"
	CodeMalformed    = "malformed_json"
	CodeTooLarge     = "body_too_large"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeInternal     = "internal"
)

// NotFound is the 404 of a missing what ("stream", "task").
func NotFound(what string) *APIError {
	return New(http.StatusNotFound, CodeNotFound, "", what+" not found")
}

// Forbidden is a 403 with msg.
func Forbidden(msg string) *APIError {
	return New(http.StatusForbidden, CodeForbidden, "", msg)
}

// Invalid is a 400 for field.
func Invalid(field, msg string) *APIError {
	return New(http.StatusBadRequest, CodeInvalid, field, msg)
}

// NewID is a fresh error ID (12 hex digits), for the body and the log line.
func NewID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Map maps err to an APIError (without an ID). Store sentinel errors become
// 404/409; specification errors 400; anything unknown 500 (the client sees
// only the id, the log has the cause).
func Map(err error) *APIError {
	var ae *APIError
	var se *models.SpecError
	var ce *core.ConflictError
	switch {
	case errors.As(err, &ae):
		return &APIError{Status: ae.Status, Code: ae.Code, Message: ae.Message, Field: ae.Field}
	case errors.As(err, &ce):
		return New(http.StatusConflict, CodeConflict, ce.Field, ce.Message)
	case errors.As(err, &se):
		// Several field errors (core.CheckTaskConfig joins them) are
		// answered together: field names the first, the message has all.
		var msgs []string
		for _, fe := range core.FieldErrors(err) {
			msgs = append(msgs, fe.Field+" "+fe.Message)
		}
		if len(msgs) == 0 {
			msgs = []string{se.Field + " " + se.Message}
		}
		return Invalid(se.Field, strings.Join(msgs, "; "))
	case errors.Is(err, models.ErrNotFound):
		return New(http.StatusNotFound, CodeNotFound, "", err.Error())
	case errors.Is(err, models.ErrConflict):
		return New(http.StatusConflict, CodeConflict, "", err.Error())
	case errors.Is(err, models.ErrInUse):
		return New(http.StatusConflict, CodeConflict, "", err.Error())
	default:
		return New(http.StatusInternalServerError, CodeInternal, "", "internal error; the server log has details under this error id")
	}
}

// Fail maps err to a status and JSON body (Map), logs it on log with an
// error id and aborts the request.
func Fail(c *gin.Context, log *slog.Logger, err error) {
	ae := Map(err)
	ae.ID = NewID()
	level := log.Info
	if ae.Status >= 500 {
		level = log.Error
	}
	level("api error", "id", ae.ID, "status", ae.Status, "code", ae.Code, "method", c.Request.Method,
		"route", c.FullPath(), "err", err.Error())
	c.AbortWithStatusJSON(ae.Status, nodewire.ErrorBody{Error: nodewire.Error{Code: ae.Code, Message: ae.Message, Field: ae.Field, ID: ae.ID}})
}
