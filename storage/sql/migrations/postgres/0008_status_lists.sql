-- Token Status Lists (draft-ietf-oauth-status-list). Each list has a fixed
-- size; its positions are handed out in blocks (next = how many were
-- handed out). key is the per-list secret of the permutation that maps
-- positions to indexes. expires_at is when every token holding an index of
-- the list has expired: garbage collection deletes the list then.
CREATE TABLE status_lists (
    id         bigserial   NOT NULL PRIMARY KEY,
    size       bigint      NOT NULL,
    perm_key   bytea       NOT NULL,
    next       bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX status_lists_expires_at ON status_lists (expires_at);

-- An access token's status list entry (0, 0 for none); the revocation feed
-- carries it, so that revoking a token sets its bit.
ALTER TABLE tokens ADD COLUMN status_list bigint NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN status_idx bigint NOT NULL DEFAULT 0;
ALTER TABLE revocations ADD COLUMN status_list bigint NOT NULL DEFAULT 0;
ALTER TABLE revocations ADD COLUMN status_idx bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION tokens_record_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.expires_at <= now() THEN
        RETURN NULL;
    END IF;
    INSERT INTO revocations (signature, expires_at, status_list, status_idx)
    VALUES (OLD.signature, OLD.expires_at, OLD.status_list, OLD.status_idx);
    RETURN NULL;
END;
$$;
