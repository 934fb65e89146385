-- A rotated refresh token records when it was rotated and the (encrypted)
-- response of its rotation, for idempotent retries within a grace window.
ALTER TABLE tokens ADD COLUMN rotated_at INTEGER;
ALTER TABLE tokens ADD COLUMN successor BLOB;
