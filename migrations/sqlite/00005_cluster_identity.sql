-- +goose Up
-- Cluster identity and revocation. nodes.host tells a restart of a node
-- from another node that claims its name; stream_origins.publish_id is the
-- stream's publish number of the publish a node holds; a stream's
-- revoked_through / revoke_reason revoke its publishes up to that number
-- (key rotated, stream disabled), so relays end them and the heartbeat
-- reconcile never attaches them again.
ALTER TABLE nodes ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE stream_origins ADD COLUMN publish_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN revoked_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN revoke_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE streams DROP COLUMN revoke_reason;
ALTER TABLE streams DROP COLUMN revoked_through;
ALTER TABLE stream_origins DROP COLUMN publish_id;
ALTER TABLE nodes DROP COLUMN host;
