-- +goose Up
-- A running ffmpeg task's latest progress as its concierge reported it
-- (concierge/wire.Progress as JSON: fps, bitrate, speed, drops, uptime);
-- '' while it has none (not running, or an older concierge).
ALTER TABLE tasks ADD COLUMN progress TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tasks DROP COLUMN progress;
