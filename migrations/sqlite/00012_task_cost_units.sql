-- +goose Up
-- Task costs move from whole cores to taskcost units, hundredths of a CPU
-- core (internal/taskcost): a task that copies the stream (restream,
-- record, pull: ffmpeg -c copy) now costs taskcost.Copy = 10, the others
-- (HLS ladders, which encode) their cost in cores × 100. Node capacity
-- stays in cores (the scheduler converts it). The description's cost
-- (what placement reads of a pending task, and what a recompilation is
-- compared with) and tasks.cost (what placement sums per concierge) move
-- together.
UPDATE tasks SET cost = CASE
    WHEN type IN ('restream', 'record', 'pull') THEN 10
    ELSE MIN(100000000, MAX(1, cost) * 100) END;
UPDATE tasks SET description = json_set(description, '$.cost', cost) WHERE json_valid(description);

-- +goose Down
UPDATE tasks SET cost = CASE
    WHEN type IN ('restream', 'record', 'pull') THEN 1
    ELSE MAX(1, (cost + 99) / 100) END;
UPDATE tasks SET description = json_set(description, '$.cost', cost) WHERE json_valid(description);
