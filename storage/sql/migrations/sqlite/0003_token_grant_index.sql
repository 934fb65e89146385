-- Every refresh deactivates the grant's active refresh tokens and deletes its
-- access tokens. A grant keeps its rotated refresh tokens until they expire
-- (for reuse detection), so an index on request_id alone makes each refresh
-- scan the whole chain. (request_id, kind, active) finds just the live rows.
CREATE INDEX tokens_grant_kind_active ON tokens (request_id, kind, active);
DROP INDEX tokens_request_id;
