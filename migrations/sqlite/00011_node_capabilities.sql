-- +goose Up
-- What a node can do beyond its role's basics, as it registered them
-- (nodewire.NodeInfo.Capabilities, a JSON list): "rtsp-pull" origins pull
-- the RTSP sources of pull task configs themselves.
ALTER TABLE nodes ADD COLUMN capabilities TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE nodes DROP COLUMN capabilities;
