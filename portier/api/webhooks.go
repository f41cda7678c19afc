package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/portier/paging"
)

// Outgoing webhooks (admin only). The secret is in the create answer only.

type webhookView struct {
	models.WebhookEndpoint
	Secret string `json:"secret,omitempty"` // only in the answer to POST
}

type webhookReq struct {
	URL           *string         `json:"url"`
	ApplicationID json.RawMessage `json:"application_id"` // null or absent: global
	Secret        *string         `json:"secret"`
	Events        *[]string       `json:"events"`
	Enabled       *bool           `json:"enabled"`
	Description   *string         `json:"description"`
}

// apply merges the given fields of r into in.
func (r *webhookReq) apply(in *models.WebhookEndpointInput) error {
	if r.URL != nil {
		in.URL = *r.URL
	}
	if len(r.ApplicationID) > 0 {
		if bytes.Equal(bytes.TrimSpace(r.ApplicationID), []byte("null")) {
			in.ApplicationID = nil
		} else {
			var id int64
			if err := json.Unmarshal(r.ApplicationID, &id); err != nil || id <= 0 {
				return httperr.Invalid("application_id", "application_id must be a positive integer or null (global)")
			}
			in.ApplicationID = &id
		}
	}
	if r.Secret != nil {
		in.Secret = *r.Secret
	}
	if r.Events != nil {
		in.Events = *r.Events
	}
	if r.Enabled != nil {
		in.Enabled = *r.Enabled
	}
	if r.Description != nil {
		in.Description = *r.Description
	}
	return nil
}

// webhookErr maps an unknown application to a field error.
func webhookErr(err error) error {
	if errors.Is(err, models.ErrNotFound) {
		return httperr.New(http.StatusBadRequest, httperr.CodeInvalid, "application_id", "no such application")
	}
	return err
}

func (s *Server) apiListWebhooks(c *gin.Context) {
	list, err := s.p.Store.ListWebhookEndpoints(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if list == nil {
		list = []models.WebhookEndpoint{}
	}
	c.JSON(http.StatusOK, listOf(list, int64(len(list)), paging.Page{Limit: len(list)}, len(list)))
}

func (s *Server) apiCreateWebhook(c *gin.Context) {
	var req webhookReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	in := models.WebhookEndpointInput{Enabled: true}
	if err := req.apply(&in); err != nil {
		s.fail(c, err)
		return
	}
	ep, err := s.core.CreateWebhook(c.Request.Context(), auth.Actor(c), in)
	if err != nil {
		s.fail(c, webhookErr(err))
		return
	}
	c.JSON(http.StatusCreated, webhookView{WebhookEndpoint: *ep, Secret: ep.Secret})
}

func (s *Server) loadWebhook(c *gin.Context) (*models.WebhookEndpoint, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	ep, err := s.p.Store.WebhookEndpoint(c.Request.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, httperr.NotFound("webhook")
	}
	return ep, err
}

func (s *Server) apiGetWebhook(c *gin.Context) {
	ep, err := s.loadWebhook(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ep)
}

// apiPatchWebhook merges the given fields; a new secret is not echoed.
func (s *Server) apiPatchWebhook(c *gin.Context) {
	ep, err := s.loadWebhook(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req webhookReq
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	in := models.WebhookEndpointInput{ApplicationID: ep.ApplicationID, URL: ep.URL, Events: ep.Events,
		Enabled: ep.Enabled, Description: ep.Description}
	if err := req.apply(&in); err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.core.UpdateWebhook(c.Request.Context(), auth.Actor(c), ep.ID, in)
	if err != nil {
		s.fail(c, webhookErr(err))
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) apiDeleteWebhook(c *gin.Context) {
	ep, err := s.loadWebhook(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.core.DeleteWebhook(c.Request.Context(), auth.Actor(c), ep.ID); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) apiListWebhookDeliveries(c *gin.Context) {
	ep, err := s.loadWebhook(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 {
			s.fail(c, httperr.Invalid("limit", "limit must be 1 to 500"))
			return
		}
	}
	list, err := s.p.Store.ListWebhookDeliveries(c.Request.Context(), ep.ID, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if list == nil {
		list = []models.WebhookDelivery{}
	}
	c.JSON(http.StatusOK, listOf(list, int64(len(list)), paging.Page{Limit: limit}, len(list)))
}

// apiTestWebhook makes one test delivery now and answers its log row.
func (s *Server) apiTestWebhook(c *gin.Context) {
	ep, err := s.loadWebhook(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	row, err := s.core.SendTestWebhook(c.Request.Context(), ep.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, row)
}
