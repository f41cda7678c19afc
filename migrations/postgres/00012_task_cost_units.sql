-- +goose Up
-- Task costs move from whole cores to taskcost units, hundredths of a CPU
-- core (internal/taskcost): a task that copies the stream (restream,
-- record, pull: ffmpeg -c copy) now costs taskcost.Copy = 10, the others
-- (HLS ladders, which encode) their cost in cores × 100. Node capacity
-- stays in cores (the scheduler converts it). The description's cost
-- (what placement reads of a pending task, and what a recompilation is
-- compared with) and tasks.cost (what placement sums per concierge) move
-- together. Descriptions are JSON objects written by the control plane.
UPDATE tasks SET cost = CASE
    WHEN type IN ('restream', 'record', 'pull') THEN 10
    ELSE LEAST(100000000, GREATEST(1, cost)::BIGINT * 100)::INTEGER END;
UPDATE tasks SET description = jsonb_set(description::jsonb, '{cost}', to_jsonb(cost))::TEXT
    WHERE description LIKE '{%';

-- +goose Down
UPDATE tasks SET cost = CASE
    WHEN type IN ('restream', 'record', 'pull') THEN 1
    ELSE GREATEST(1, (cost + 99) / 100) END;
UPDATE tasks SET description = jsonb_set(description::jsonb, '{cost}', to_jsonb(cost))::TEXT
    WHERE description LIKE '{%';
