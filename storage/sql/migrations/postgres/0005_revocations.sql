-- The revocation feed: one row for every access token that stops being
-- valid before it expires (deleted, or deactivated), written by triggers in
-- the same transaction as the change. Instances poll it (seq > cursor) to
-- keep their in-memory revocation set current; garbage collection deletes a
-- row once its token has expired. Tokens deleted after they expired (by
-- garbage collection) are not revocations and write no row.
--
-- seq comes from a sequence, so a row can commit after a row with a higher
-- seq; the poller (authserver) waits a bounded time for such gaps to fill.
CREATE TABLE revocations (
    seq        bigserial   NOT NULL PRIMARY KEY,
    signature  text        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

CREATE FUNCTION tokens_record_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.expires_at <= now() THEN
        RETURN NULL;
    END IF;
    INSERT INTO revocations (signature, expires_at) VALUES (OLD.signature, OLD.expires_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tokens_revoke_on_delete AFTER DELETE ON tokens
FOR EACH ROW WHEN (OLD.kind = 'access_token' AND OLD.active)
EXECUTE FUNCTION tokens_record_revocation();

CREATE TRIGGER tokens_revoke_on_deactivate AFTER UPDATE OF active ON tokens
FOR EACH ROW WHEN (OLD.kind = 'access_token' AND OLD.active AND NOT NEW.active)
EXECUTE FUNCTION tokens_record_revocation();
