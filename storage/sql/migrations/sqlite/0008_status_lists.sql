-- Token Status Lists (draft-ietf-oauth-status-list). Each list has a fixed
-- size; its positions are handed out in blocks (next = how many were
-- handed out). key is the per-list secret of the permutation that maps
-- positions to indexes. expires_at is when every token holding an index of
-- the list has expired: garbage collection deletes the list then.
CREATE TABLE status_lists (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    size       INTEGER NOT NULL,
    perm_key   BLOB    NOT NULL,
    next       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX status_lists_expires_at ON status_lists (expires_at);

-- An access token's status list entry (0, 0 for none); the revocation feed
-- carries it, so that revoking a token sets its bit.
ALTER TABLE tokens ADD COLUMN status_list INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN status_idx INTEGER NOT NULL DEFAULT 0;
ALTER TABLE revocations ADD COLUMN status_list INTEGER NOT NULL DEFAULT 0;
ALTER TABLE revocations ADD COLUMN status_idx INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER tokens_revoke_on_delete;
DROP TRIGGER tokens_revoke_on_deactivate;

CREATE TRIGGER tokens_revoke_on_delete AFTER DELETE ON tokens
WHEN OLD.kind = 'access_token' AND OLD.active = 1
 AND OLD.expires_at > CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
BEGIN
    INSERT INTO revocations (signature, expires_at, status_list, status_idx)
    VALUES (OLD.signature, OLD.expires_at, OLD.status_list, OLD.status_idx);
END;

CREATE TRIGGER tokens_revoke_on_deactivate AFTER UPDATE OF active ON tokens
WHEN OLD.kind = 'access_token' AND OLD.active = 1 AND NEW.active = 0
BEGIN
    INSERT INTO revocations (signature, expires_at, status_list, status_idx)
    VALUES (OLD.signature, OLD.expires_at, OLD.status_list, OLD.status_idx);
END;
