-- +goose Up
-- One naming scheme for audit objects, "kind/id": publish and play events
-- named streams "stream:1" (and unknown paths "stream:live/x"), node events
-- "node:a", while every other event said "stream/1".
UPDATE audit_events SET object = 'stream/' || substr(object, 8)
  WHERE object LIKE 'stream:%' AND substr(object, 8) NOT LIKE '%/%';
UPDATE audit_events SET object = 'path/' || substr(object, 8) WHERE object LIKE 'stream:%';
UPDATE audit_events SET object = 'node/' || substr(object, 6) WHERE object LIKE 'node:%';

-- +goose Down
-- Stream ids stay "stream/1" (both spellings were in use before).
UPDATE audit_events SET object = 'node:' || substr(object, 6) WHERE object LIKE 'node/%';
UPDATE audit_events SET object = 'stream:' || substr(object, 6) WHERE object LIKE 'path/%';
