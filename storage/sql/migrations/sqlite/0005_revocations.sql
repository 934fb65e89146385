-- The revocation feed: one row for every access token that stops being
-- valid before it expires (deleted, or deactivated), written by triggers in
-- the same transaction as the change. Instances poll it (seq > cursor) to
-- keep their in-memory revocation set current; garbage collection deletes a
-- row once its token has expired. Tokens deleted after they expired (by
-- garbage collection) are not revocations and write no row.
CREATE TABLE revocations (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    signature  TEXT    NOT NULL,
    expires_at INTEGER NOT NULL -- Unix microseconds, as in tokens
) STRICT;
CREATE INDEX revocations_expires_at ON revocations (expires_at);

CREATE TRIGGER tokens_revoke_on_delete AFTER DELETE ON tokens
WHEN OLD.kind = 'access_token' AND OLD.active = 1
 AND OLD.expires_at > CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
BEGIN
    INSERT INTO revocations (signature, expires_at) VALUES (OLD.signature, OLD.expires_at);
END;

CREATE TRIGGER tokens_revoke_on_deactivate AFTER UPDATE OF active ON tokens
WHEN OLD.kind = 'access_token' AND OLD.active = 1 AND NEW.active = 0
BEGIN
    INSERT INTO revocations (signature, expires_at) VALUES (OLD.signature, OLD.expires_at);
END;
