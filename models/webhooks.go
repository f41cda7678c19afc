package models

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Webhook event types: what portier/webhook delivers, and what an
// endpoint's filter may name.
const (
	WebhookStreamLive        = "stream.live"
	WebhookStreamOffline     = "stream.offline"
	WebhookPublishRefused    = "publish.refused"
	WebhookTaskFailed        = "task.failed"
	WebhookTaskRecovered     = "task.recovered"
	WebhookNodeLost          = "node.lost"
	WebhookRecordingFinished = "recording.finished"
	// WebhookTest is the event of a test delivery; every endpoint gets it,
	// whatever its filter.
	WebhookTest = "webhook.test"
)

// WebhookEventTypes are the event types an endpoint's filter may name.
var WebhookEventTypes = []string{WebhookStreamLive, WebhookStreamOffline, WebhookPublishRefused, WebhookTaskFailed,
	WebhookTaskRecovered, WebhookNodeLost, WebhookRecordingFinished}

// WebhookEvents is an endpoint's event filter, stored as comma-separated
// text. Empty selects every event.
type WebhookEvents []string

// Value stores the filter.
func (e WebhookEvents) Value() (driver.Value, error) { return strings.Join(e, ","), nil }

// Scan reads the filter.
func (e *WebhookEvents) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("scan webhook events from %T", src)
	}
	*e = nil
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*e = append(*e, f)
		}
	}
	return nil
}

// Wants reports whether the filter selects event type typ.
func (e WebhookEvents) Wants(typ string) bool {
	return len(e) == 0 || typ == WebhookTest || slices.Contains(e, typ)
}

// WebhookEndpoint is a URL that gets signed event deliveries. With an
// ApplicationID it gets the events of that application's streams (and no
// others); without one it is global and gets every event.
type WebhookEndpoint struct {
	ID            int64        `gorm:"primaryKey" json:"id"`
	ApplicationID *int64       `json:"application_id"`
	Application   *Application `gorm:"foreignKey:ApplicationID" json:"application,omitempty"`
	URL           string       `json:"url"`
	// Secret signs the deliveries (HMAC-SHA256); it never leaves the
	// control plane in JSON.
	Secret      string        `json:"-"`
	Events      WebhookEvents `json:"events"`
	Enabled     bool          `json:"enabled"`
	Description string        `json:"description"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// WebhookDelivery is one delivery attempt of one event to one endpoint.
// StatusCode is 0 when no HTTP answer came (Error says why).
type WebhookDelivery struct {
	ID         int64     `gorm:"primaryKey" json:"id"`
	EndpointID int64     `json:"endpoint_id"`
	EventID    string    `json:"event_id"`
	Event      string    `json:"event"`
	Attempt    int       `json:"attempt"`
	StatusCode int       `json:"status_code"`
	Error      string    `json:"error"`
	DurationMS int64     `json:"duration_ms"`
	CreatedAt  time.Time `json:"created_at"`
}

// WebhookEndpointInput is an endpoint to create or the new state of one to
// update. An empty Secret creates one (NewWebhookSecret) and, on update,
// keeps the old one.
type WebhookEndpointInput struct {
	ApplicationID *int64
	URL           string
	Secret        string
	Events        []string
	Enabled       bool
	Description   string
}

// NewWebhookSecret is a random signing secret ("whsec_" and 43 characters).
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// urlPolicyOrDefault is the store's TaskURLPolicy (the built-in one when unset).
func (s *Store) urlPolicyOrDefault() *TaskURLPolicy {
	if s.urlPolicy != nil {
		if p := s.urlPolicy.Load(); p != nil {
			return p
		}
	}
	return &TaskURLPolicy{}
}

// CheckWebhookURL refuses a webhook URL that is not http(s) or that the
// store's TaskURLPolicy refuses (link-local and metadata addresses,
// loopback, a control plane's internal paths; see TaskURLPolicy): the
// control plane itself makes the request, so it is held to the rules of
// task URLs. Host names are judged at dial time (CheckWebhookAddr).
func (s *Store) CheckWebhookURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, specErr("url", "must be an http:// or https:// URL, e.g. https://example.com/hooks/portier")
	}
	if len(raw) > 2048 {
		return nil, specErr("url", "is longer than 2048 characters")
	}
	if u.User != nil {
		return nil, specErr("url", "must not contain a user name or password: verify deliveries by their signature")
	}
	if err := s.urlPolicyOrDefault().Check("url", u); err != nil {
		return nil, err
	}
	return u, nil
}

// CheckWebhookAddr refuses the address a webhook delivery is about to
// connect to when the store's TaskURLPolicy refuses it for scheme: the
// check of CheckWebhookURL, after DNS, so a name that resolves to a
// metadata address is refused too.
func (s *Store) CheckWebhookAddr(scheme string, a netip.Addr) error {
	return s.urlPolicyOrDefault().CheckAddr("url", scheme, a)
}

func (s *Store) checkWebhookInput(in *WebhookEndpointInput) error {
	if _, err := s.CheckWebhookURL(in.URL); err != nil {
		return err
	}
	for _, e := range in.Events {
		if !slices.Contains(WebhookEventTypes, e) {
			return specErr("events", "%q is not an event; want some of %s", e, strings.Join(WebhookEventTypes, ", "))
		}
	}
	if in.Secret != "" && (len(in.Secret) < 16 || len(in.Secret) > 256 || strings.ContainsAny(in.Secret, " \t\r\n")) {
		return specErr("secret", "must be 16 to 256 characters without spaces (leave it empty to have one made)")
	}
	if len(in.Description) > 500 {
		return specErr("description", "is longer than 500 characters")
	}
	return nil
}

// CreateWebhookEndpoint validates in, creates the endpoint and its audit
// event (webhook.create) in one transaction. Invalid fields are *SpecError;
// an unknown application ErrNotFound.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, in WebhookEndpointInput, by Actor) (*WebhookEndpoint, error) {
	if err := s.checkWebhookInput(&in); err != nil {
		return nil, err
	}
	if in.Secret == "" {
		in.Secret = NewWebhookSecret()
	}
	now := time.Now().UTC()
	ep := &WebhookEndpoint{ApplicationID: in.ApplicationID, URL: in.URL, Secret: in.Secret, Events: slices.Clone(in.Events),
		Enabled: in.Enabled, Description: in.Description, CreatedAt: now, UpdatedAt: now}
	err := s.Tx(ctx, func(tx *Store) error {
		if err := tx.checkApplication(ctx, in.ApplicationID); err != nil {
			return err
		}
		if err := tx.db(ctx).Omit("Application").Create(ep).Error; err != nil {
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "webhook.create", Object: fmt.Sprintf("webhook/%d", ep.ID), Addr: by.Addr,
			Details: MustJSON(map[string]any{"url": ep.URL, "events": ep.Events, "application_id": ep.ApplicationID, "enabled": ep.Enabled})})
	})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

// UpdateWebhookEndpoint replaces endpoint id's settings with in (an empty
// Secret keeps the old one) and audits webhook.update, in one transaction.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, id int64, in WebhookEndpointInput, by Actor) (*WebhookEndpoint, error) {
	if err := s.checkWebhookInput(&in); err != nil {
		return nil, err
	}
	var ep *WebhookEndpoint
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		if ep, err = tx.WebhookEndpoint(ctx, id); err != nil {
			return err
		}
		if err := tx.checkApplication(ctx, in.ApplicationID); err != nil {
			return err
		}
		rotated := in.Secret != "" && in.Secret != ep.Secret
		if in.Secret != "" {
			ep.Secret = in.Secret
		}
		ep.ApplicationID, ep.Application, ep.URL, ep.Events = in.ApplicationID, nil, in.URL, slices.Clone(in.Events)
		ep.Enabled, ep.Description, ep.UpdatedAt = in.Enabled, in.Description, time.Now().UTC()
		if err := tx.db(ctx).Model(ep).Select("application_id", "url", "secret", "events", "enabled", "description", "updated_at").
			Updates(ep).Error; err != nil {
			return fmt.Errorf("update webhook endpoint %d: %w", id, err)
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "webhook.update", Object: fmt.Sprintf("webhook/%d", id), Addr: by.Addr,
			Details: MustJSON(map[string]any{"url": ep.URL, "events": ep.Events, "application_id": ep.ApplicationID, "enabled": ep.Enabled, "secret_rotated": rotated})})
	})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

// DeleteWebhookEndpoint deletes endpoint id with its delivery log and
// audits webhook.delete, in one transaction.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id int64, by Actor) error {
	return s.Tx(ctx, func(tx *Store) error {
		ep, err := tx.WebhookEndpoint(ctx, id)
		if err != nil {
			return err
		}
		// The rows go explicitly: SQLite enforces ON DELETE CASCADE only
		// with foreign keys on, which a copied database may lack.
		if err := tx.db(ctx).Where("endpoint_id = ?", id).Delete(&WebhookDelivery{}).Error; err != nil {
			return fmt.Errorf("delete deliveries of webhook endpoint %d: %w", id, err)
		}
		if err := tx.db(ctx).Delete(&WebhookEndpoint{}, id).Error; err != nil {
			return fmt.Errorf("delete webhook endpoint %d: %w", id, err)
		}
		return tx.Audit(ctx, &AuditEvent{Actor: by.Name, Action: "webhook.delete", Object: fmt.Sprintf("webhook/%d", id), Addr: by.Addr,
			Details: MustJSON(map[string]any{"url": ep.URL})})
	})
}

func (s *Store) checkApplication(ctx context.Context, id *int64) error {
	if id == nil {
		return nil
	}
	var n int64
	if err := s.db(ctx).Model(&Application{}).Where("id = ?", *id).Count(&n).Error; err != nil {
		return fmt.Errorf("application %d: %w", *id, err)
	}
	if n == 0 {
		return fmt.Errorf("application %d: %w", *id, ErrNotFound)
	}
	return nil
}

// WebhookEndpoint reads one endpoint (with its application).
func (s *Store) WebhookEndpoint(ctx context.Context, id int64) (*WebhookEndpoint, error) {
	var ep WebhookEndpoint
	if err := s.db(ctx).Preload("Application").First(&ep, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("webhook endpoint %d", id))
	}
	return &ep, nil
}

// ListWebhookEndpoints lists every endpoint (with its application), oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error) {
	var out []WebhookEndpoint
	if err := s.db(ctx).Preload("Application").Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return out, nil
}

// WebhookEndpointsFor lists the enabled endpoints that get an event of
// type typ about application app ("" for events of no application, such as
// node.lost): the global ones and app's own, whose filters select typ.
func (s *Store) WebhookEndpointsFor(ctx context.Context, app, typ string) ([]WebhookEndpoint, error) {
	q := s.db(ctx).Where("enabled = ?", true)
	if app == "" {
		q = q.Where("application_id IS NULL")
	} else {
		q = q.Where("application_id IS NULL OR application_id IN (SELECT id FROM applications WHERE name = ?)", app)
	}
	var all []WebhookEndpoint
	if err := q.Order("id").Find(&all).Error; err != nil {
		return nil, fmt.Errorf("webhook endpoints for %s: %w", typ, err)
	}
	out := all[:0]
	for _, ep := range all {
		if ep.Events.Wants(typ) {
			out = append(out, ep)
		}
	}
	return out, nil
}

// AddWebhookDelivery records one delivery attempt.
func (s *Store) AddWebhookDelivery(ctx context.Context, d *WebhookDelivery) error {
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if len(d.Error) > 1000 {
		d.Error = strings.ToValidUTF8(d.Error[:1000], "") + "…"
	}
	if err := s.db(ctx).Create(d).Error; err != nil {
		return fmt.Errorf("record webhook delivery: %w", err)
	}
	return nil
}

// ListWebhookDeliveries lists endpoint id's newest delivery attempts first
// (at most limit; 0 for all that are kept).
func (s *Store) ListWebhookDeliveries(ctx context.Context, endpointID int64, limit int) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	if err := s.db(ctx).Where("endpoint_id = ?", endpointID).Order("id DESC").Limit(lim(limit)).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list deliveries of webhook endpoint %d: %w", endpointID, err)
	}
	return out, nil
}

// PruneWebhookDeliveries bounds the delivery log: it keeps the newest
// keepPerEndpoint attempts of each endpoint and none older than before. It
// returns how many rows it deleted.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, keepPerEndpoint int, before time.Time) (int64, error) {
	res := s.db(ctx).Exec(`DELETE FROM webhook_deliveries WHERE created_at < ? OR id IN (
		SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY id DESC) AS n FROM webhook_deliveries) ranked
		WHERE n > ?)`, before.UTC(), keepPerEndpoint)
	if res.Error != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// LostNode is a node that stopped heartbeating without leaving.
type LostNode struct {
	Name          string
	Role          string
	LastHeartbeat time.Time
}

// ClaimLostNodes marks, and returns, the nodes whose last heartbeat is
// before aliveSince and whose loss nobody has claimed since: nodes that
// left (no last heartbeat) or drain are not lost. Each loss is claimed
// once, whichever replica asks first (one UPDATE … RETURNING); a node that
// heartbeats again can be lost again later. For the node.lost webhook.
func (s *Store) ClaimLostNodes(ctx context.Context, aliveSince, now time.Time) ([]LostNode, error) {
	var rows []struct {
		Name          string
		Role          string
		LastHeartbeat time.Time
	}
	err := s.db(ctx).Raw(`UPDATE nodes SET lost_at = ?
		WHERE last_heartbeat IS NOT NULL AND last_heartbeat < ? AND draining = ? AND (lost_at IS NULL OR lost_at < last_heartbeat)
		RETURNING name, role, last_heartbeat`, now.UTC(), aliveSince.UTC(), false).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("claim lost nodes: %w", err)
	}
	out := make([]LostNode, len(rows))
	for i, r := range rows {
		out[i] = LostNode(r)
	}
	slices.SortFunc(out, func(a, b LostNode) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
