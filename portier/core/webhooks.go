package core

import (
	"context"
	"errors"

	"github.com/portier/portier/models"
)

// WebhookTester makes one test delivery to an endpoint and answers its
// log row (portier/webhook.Dispatcher.SendTest).
type WebhookTester interface {
	SendTest(ctx context.Context, endpointID int64) (models.WebhookDelivery, error)
}

// CreateWebhook creates a webhook endpoint (validated and audited by
// models.CreateWebhookEndpoint); the answer holds its secret, which only
// the caller's answer may show.
func (c *Core) CreateWebhook(ctx context.Context, by Actor, in models.WebhookEndpointInput) (*models.WebhookEndpoint, error) {
	return c.store.CreateWebhookEndpoint(ctx, in, by)
}

// UpdateWebhook replaces endpoint id's settings (an empty Secret keeps it).
func (c *Core) UpdateWebhook(ctx context.Context, by Actor, id int64, in models.WebhookEndpointInput) (*models.WebhookEndpoint, error) {
	return c.store.UpdateWebhookEndpoint(ctx, id, in, by)
}

// DeleteWebhook deletes endpoint id with its delivery log.
func (c *Core) DeleteWebhook(ctx context.Context, by Actor, id int64) error {
	return c.store.DeleteWebhookEndpoint(ctx, id, by)
}

// SendTestWebhook delivers a webhook.test event to endpoint id now,
// enabled or not, and answers the attempt's log row.
func (c *Core) SendTestWebhook(ctx context.Context, id int64) (models.WebhookDelivery, error) {
	if c.hooks == nil {
		return models.WebhookDelivery{}, errors.New("webhooks are not running")
	}
	return c.hooks.SendTest(ctx, id)
}
