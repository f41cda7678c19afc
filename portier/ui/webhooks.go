package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/auth"
	"github.com/portier/portier/portier/httperr"
	"github.com/portier/portier/web/views"
)

// webhookLogRows is how many delivery attempts the page shows per endpoint.
const webhookLogRows = 20

func (s *Server) webhooksVM(c *gin.Context, form views.NewWebhook) (views.Webhooks, error) {
	ctx := rctx(c)
	eps, err := s.p.Store.ListWebhookEndpoints(ctx)
	if err != nil {
		return views.Webhooks{}, err
	}
	apps, err := s.p.Store.ListApplications(ctx)
	if err != nil {
		return views.Webhooks{}, err
	}
	vm := views.Webhooks{Form: form, Events: models.WebhookEventTypes}
	for _, a := range apps {
		vm.Apps = append(vm.Apps, views.WebhookApp{ID: a.ID, Name: a.Name})
	}
	for _, ep := range eps {
		row := views.WebhookRow{ID: ep.ID, URL: ep.URL, Events: ep.Events, Enabled: ep.Enabled, Description: ep.Description}
		if ep.Application != nil {
			row.Application = ep.Application.Name
		}
		log, err := s.p.Store.ListWebhookDeliveries(ctx, ep.ID, webhookLogRows)
		if err != nil {
			return views.Webhooks{}, err
		}
		for _, d := range log {
			row.Deliveries = append(row.Deliveries, views.WebhookDeliveryRow{Event: d.Event, Attempt: d.Attempt, Code: d.StatusCode,
				Error: d.Error, Duration: (time.Duration(d.DurationMS) * time.Millisecond).String(), Time: formatTime(&d.CreatedAt)})
		}
		vm.Rows = append(vm.Rows, row)
	}
	return vm, nil
}

func (s *Server) uiWebhooks(c *gin.Context) {
	vm, err := s.webhooksVM(c, views.NewWebhook{Enabled: true})
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	s.render(c, http.StatusOK, views.WebhooksView(s.page(c, "Webhooks", "webhooks"), vm))
}

// uiCreateWebhook creates an endpoint through core.CreateWebhook and shows
// its secret once, in the answer to the post (never in a URL, never again).
func (s *Server) uiCreateWebhook(c *gin.Context) {
	l := s.lang(c)
	form := views.NewWebhook{URL: strings.TrimSpace(c.PostForm("url")), AppID: c.PostForm("application_id"),
		Events: c.PostFormArray("events"), Enabled: c.PostForm("enabled") == "true",
		Description: strings.TrimSpace(c.PostForm("description")), Errors: views.FieldErrors{}}
	in := models.WebhookEndpointInput{URL: form.URL, Events: form.Events, Enabled: form.Enabled, Description: form.Description}
	if u, err := url.Parse(form.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		form.Errors["url"] = l.T("Give an http:// or https:// URL, e.g. https://example.com/hooks/portier.")
	}
	if form.AppID != "" {
		id, err := strconv.ParseInt(form.AppID, 10, 64)
		if err != nil || id <= 0 {
			form.Errors["application_id"] = l.T("Choose an application.")
		}
		in.ApplicationID = &id
	}
	var ep *models.WebhookEndpoint
	if len(form.Errors) == 0 {
		var err error
		ep, err = s.core.CreateWebhook(rctx(c), auth.Actor(c), in)
		var se *models.SpecError
		switch {
		case errors.As(err, &se):
			form.Errors[se.Field] = l.T("Refused: %s", se.Field+" "+se.Message)
		case errors.Is(err, models.ErrNotFound):
			form.Errors["application_id"] = l.T("Choose an application.")
		case err != nil:
			s.uiError(c, 0, err)
			return
		default:
			form = views.NewWebhook{Enabled: true}
		}
	}
	vm, err := s.webhooksVM(c, form)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	status := http.StatusBadRequest
	if ep != nil {
		vm.NewSecret, vm.NewID, status = ep.Secret, ep.ID, http.StatusOK
	}
	s.render(c, status, views.WebhooksView(s.page(c, "Webhooks", "webhooks"), vm))
}

func webhookID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, httperr.NotFound("webhook")
	}
	return id, nil
}

// uiTestWebhook makes one test delivery now; its row is in the log.
func (s *Server) uiTestWebhook(c *gin.Context) {
	id, err := webhookID(c)
	if err == nil {
		_, err = s.core.SendTestWebhook(rctx(c), id)
	}
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/admin/webhooks?done=webhook-tested#webhook-"+strconv.FormatInt(id, 10))
}

func (s *Server) uiWebhookEnabled(c *gin.Context) {
	id, err := webhookID(c)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	ep, err := s.p.Store.WebhookEndpoint(rctx(c), id)
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	in := models.WebhookEndpointInput{ApplicationID: ep.ApplicationID, URL: ep.URL, Events: ep.Events,
		Enabled: c.PostForm("enabled") == "true", Description: ep.Description}
	if _, err := s.core.UpdateWebhook(rctx(c), auth.Actor(c), id, in); err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/admin/webhooks?done=webhook-updated")
}

func (s *Server) uiDeleteWebhook(c *gin.Context) {
	id, err := webhookID(c)
	if err == nil {
		err = s.core.DeleteWebhook(rctx(c), auth.Actor(c), id)
	}
	if err != nil {
		s.uiError(c, 0, err)
		return
	}
	redirect(c, "/admin/webhooks?done=webhook-deleted")
}
