-- +goose Up
-- The record-task files the control plane announced (webhook
-- recording.finished): one row per stream and file name, so each file is
-- announced once whichever replica a concierge's report reaches and
-- however often it is sent (models.ClaimFinishedRecording). Rows older
-- than a month are pruned.
CREATE TABLE finished_recordings (
    stream_id   BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    file        TEXT NOT NULL,
    task_id     BIGINT NOT NULL,
    size        BIGINT NOT NULL DEFAULT 0,
    finished_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, file)
);
CREATE INDEX finished_recordings_at ON finished_recordings (finished_at);

-- +goose Down
DROP TABLE finished_recordings;
