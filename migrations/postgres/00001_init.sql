-- +goose Up
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    language      TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_tokens_prefix ON api_tokens (prefix);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE applications (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE streams (
    id              BIGSERIAL PRIMARY KEY,
    application_id  BIGINT NOT NULL REFERENCES applications (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL,
    owner_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    publish_key     TEXT NOT NULL UNIQUE,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    allow_takeover  BOOLEAN NOT NULL DEFAULT FALSE,
    live            BOOLEAN NOT NULL DEFAULT FALSE,
    publish_count   BIGINT NOT NULL DEFAULT 0,
    last_publish_at TIMESTAMPTZ,
    codec_info      TEXT NOT NULL DEFAULT '{}',
    bitrate         BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (application_id, name)
);
CREATE INDEX streams_owner ON streams (owner_id);
CREATE INDEX streams_live ON streams (live);

CREATE TABLE stream_origins (
    id        BIGSERIAL PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    node_name TEXT NOT NULL,
    since     TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, node_name)
);
CREATE INDEX stream_origins_node ON stream_origins (node_name);

CREATE TABLE task_configs (
    id         BIGSERIAL PRIMARY KEY,
    stream_id  BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    type       TEXT NOT NULL CHECK (type IN ('restream', 'record', 'pull', 'hls')),
    name       TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    spec       TEXT NOT NULL DEFAULT '{}',
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, name)
);

CREATE TABLE tasks (
    id             BIGSERIAL PRIMARY KEY,
    config_id      BIGINT REFERENCES task_configs (id) ON DELETE SET NULL,
    config_version BIGINT NOT NULL DEFAULT 0,
    stream_id      BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '{}',
    desired_state  TEXT NOT NULL DEFAULT 'running' CHECK (desired_state IN ('running', 'stopped')),
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'assigned', 'starting', 'running', 'backoff', 'failed', 'stopping', 'stopped')),
    node_name      TEXT NOT NULL DEFAULT '',
    lease_until    TIMESTAMPTZ,
    epoch          BIGINT NOT NULL DEFAULT 0,
    restarts       INTEGER NOT NULL DEFAULT 0,
    last_exit_code INTEGER,
    last_error     TEXT NOT NULL DEFAULT '',
    log_tail       TEXT NOT NULL DEFAULT '',
    started_at     TIMESTAMPTZ,
    reason         TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_stream ON tasks (stream_id);
CREATE INDEX tasks_config ON tasks (config_id);
CREATE INDEX tasks_node ON tasks (node_name);
CREATE INDEX tasks_state ON tasks (state);

CREATE TABLE nodes (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    rtmp_address   TEXT NOT NULL DEFAULT '',
    http_address   TEXT NOT NULL DEFAULT '',
    capacity       INTEGER NOT NULL DEFAULT 0,
    labels         TEXT NOT NULL DEFAULT '{}',
    load           TEXT NOT NULL DEFAULT '{}',
    version        TEXT NOT NULL DEFAULT '',
    last_heartbeat TIMESTAMPTZ,
    registered_at  TIMESTAMPTZ NOT NULL,
    draining       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX nodes_role ON nodes (role);

CREATE TABLE audit_events (
    id      BIGSERIAL PRIMARY KEY,
    time    TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL DEFAULT '',
    action  TEXT NOT NULL,
    object  TEXT NOT NULL DEFAULT '',
    result  TEXT NOT NULL DEFAULT '',
    reason  TEXT NOT NULL DEFAULT '',
    node    TEXT NOT NULL DEFAULT '',
    addr    TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_action ON audit_events (action, time);
CREATE INDEX audit_events_actor ON audit_events (actor, time);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE nodes;
DROP TABLE tasks;
DROP TABLE task_configs;
DROP TABLE stream_origins;
DROP TABLE streams;
DROP TABLE applications;
DROP TABLE api_tokens;
DROP TABLE users;
