-- +goose Up
-- When the control plane last told (webhook node.lost) that a node stopped
-- heartbeating: one replica claims each loss (models.ClaimLostNodes).
ALTER TABLE nodes ADD COLUMN lost_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE nodes DROP COLUMN lost_at;
