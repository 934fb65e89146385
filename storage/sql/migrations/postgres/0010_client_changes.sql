-- The client change feed: one row for every update or deletion of a client,
-- written by triggers in the same transaction as the change. Instances poll
-- it (seq > cursor) to drop the client registrations they cache; garbage
-- collection deletes rows older than storage.ClientChangeRetention.
--
-- seq comes from a sequence, so a row can commit after a row with a higher
-- seq; the poller (authserver) waits a bounded time for such gaps to fill.
CREATE TABLE client_changes (
    seq        bigserial   NOT NULL PRIMARY KEY,
    client_id  text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_changes_changed_at ON client_changes (changed_at);

CREATE FUNCTION clients_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO client_changes (client_id) VALUES (OLD.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_change_on_update AFTER UPDATE ON clients
FOR EACH ROW EXECUTE FUNCTION clients_record_change();

CREATE TRIGGER clients_change_on_delete AFTER DELETE ON clients
FOR EACH ROW EXECUTE FUNCTION clients_record_change();
