-- +goose Up
-- The placement cost of a task, copied from its description when the task
-- is created. Placement sums it per concierge every round; reading it out
-- of every active task's description as JSON took ~10 ms a round at 3,000
-- tasks.
ALTER TABLE tasks ADD COLUMN cost INTEGER NOT NULL DEFAULT 1;
UPDATE tasks SET cost = MAX(1, MIN(1000000, CAST(COALESCE(json_extract(description, '$.cost'), 1) AS INTEGER)));

-- +goose Down
ALTER TABLE tasks DROP COLUMN cost;
