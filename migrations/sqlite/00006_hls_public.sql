-- +goose Up
-- Whether a stream's HLS plays without a play token (the playlist rewriter
-- asks for one otherwise). Off by default: a stream's viewers need the
-- viewer URL the API hands out (play.hls) unless its owner makes it public.
ALTER TABLE streams ADD COLUMN hls_public BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE streams DROP COLUMN hls_public;
