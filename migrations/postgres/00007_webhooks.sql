-- +goose Up
-- Outgoing webhooks (portier/webhook). An endpoint is global
-- (application_id NULL) or gets only the events of one application; events
-- is a comma-separated filter of event types (empty: every event). The
-- secret signs the deliveries (HMAC-SHA256), so it is kept as is.
CREATE TABLE webhook_endpoints (
    id             BIGSERIAL PRIMARY KEY,
    application_id BIGINT REFERENCES applications (id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    secret         TEXT NOT NULL,
    events         TEXT NOT NULL DEFAULT '',
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    description    TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_application ON webhook_endpoints (application_id);

-- One row per delivery attempt, pruned to the newest rows per endpoint.
CREATE TABLE webhook_deliveries (
    id          BIGSERIAL PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
