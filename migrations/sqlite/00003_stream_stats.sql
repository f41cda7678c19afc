-- +goose Up
-- Per-node statistics of live streams, replaced by every relay heartbeat
-- (see media/cluster.StreamReport). Rows of nodes that stopped
-- heartbeating are removed by the control plane's reaper.
CREATE TABLE stream_stats (
    stream_id  BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    node_name  TEXT NOT NULL,
    node_role  TEXT NOT NULL DEFAULT '',
    publisher  BOOLEAN NOT NULL DEFAULT 0,
    players    INTEGER NOT NULL DEFAULT 0,
    bitrate_in BIGINT NOT NULL DEFAULT 0,
    codec      TEXT NOT NULL DEFAULT '{}',
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (stream_id, node_name)
);
CREATE INDEX stream_stats_node ON stream_stats (node_name);
CREATE INDEX stream_stats_updated ON stream_stats (updated_at);

-- +goose Down
DROP TABLE stream_stats;
